"""Model registry in the object store.

Layout:
    models/<role>/<version>/spec.json
    models/<role>/<version>/weights.safetensors   (built-in archs)
    models/<role>/<version>/model.pt              (bring-your-own TorchScript)
    models/aliases.json   {"prefilter": {"production": "v0001", ...}, "heavy": {...}}
    models/alias_history.jsonl   every alias move: who, when, from, to, why (rollback reads it)
    models/evaluations/<prefilter>+<heavy>/...json   a pair's held-out evaluations (the gates read them)

The spec records the sha256 of every file of the version (`files`); every load checks
them. Weights are only ever read with safetensors, or with torch.jit.load after checking
the file really is a TorchScript archive (which is code: see the README). Plain pickles
are refused. The registry never changes torch's thread settings.

torch is imported where a model is built, stored or loaded, not at import: reading specs
and aliases (what a Spark job's driver and the DAG's tasks do) stays cheap (torch's import
takes about 4 s on the 2-core machine).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from models.predictor import Predictor

ROLES = ("prefilter", "heavy")
BUILTIN_ARCHS = ("prefilter_cnn", "prefilter_ensemble", "mobilenet_like", "mobilenet_ensemble")
ALIASES_KEY = "models/aliases.json"
HISTORY_KEY = "models/alias_history.jsonl"  # one JSON line per alias move, appended
EVALUATIONS_PREFIX = "models/evaluations/"  # <prefilter>+<heavy>/<first>_<last>_<days>.json
_VERSION_RE = re.compile(r"^v\d{4,}$")


def build_module(arch: str, arch_kwargs: dict) -> nn.Module:
    """Rebuild a built-in architecture from its spec."""
    if arch == "prefilter_cnn":
        from models.prefilter import PrefilterCNN
        return PrefilterCNN(**arch_kwargs)
    if arch == "prefilter_ensemble":
        from models.prefilter import PrefilterEnsemble
        return PrefilterEnsemble(**arch_kwargs)
    if arch == "mobilenet_like":
        from models.heavy import MobileNetLike
        return MobileNetLike(**arch_kwargs)
    if arch == "mobilenet_ensemble":
        from models.heavy import HeavyEnsemble
        return HeavyEnsemble(**arch_kwargs)
    raise ValueError(f"unknown built-in arch {arch!r}")


def is_torchscript_archive(data: bytes) -> bool:
    """True when `data` is a zip laid out like a TorchScript archive (code/ + constants.pkl)."""
    if not data.startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile:
        return False
    has_code = any("/code/" in f"/{n}" for n in names)
    has_consts = any(n.endswith("constants.pkl") for n in names)
    has_data = any(n.endswith("data.pkl") for n in names)
    return has_code and has_consts and has_data


def load_torchscript_bytes(data: bytes) -> torch.jit.ScriptModule:
    """torch.jit.load, but only for real TorchScript archives (never a plain pickle)."""
    import torch

    if not is_torchscript_archive(data):
        raise ValueError("not a TorchScript archive (plain pickles / checkpoints are refused)")
    return torch.jit.load(io.BytesIO(data), map_location="cpu")


class ModelRegistry:
    """Versioned models + aliases under `models/` in an ObjectStore."""

    def __init__(self, store):
        self.store = store

    # -- keys ------------------------------------------------------------------
    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")

    @staticmethod
    def _key(role: str, version: str, name: str) -> str:
        return f"models/{role}/{version}/{name}"

    # -- versions / aliases ----------------------------------------------------
    def versions(self, role: str) -> list[str]:
        self._check_role(role)
        found = set()
        for key in self.store.list(f"models/{role}/"):
            parts = key.split("/")
            if len(parts) >= 4 and parts[3] == "spec.json" and _VERSION_RE.match(parts[2]):
                found.add(parts[2])
        return sorted(found, key=lambda v: int(v[1:]))

    def _next_version(self, role: str) -> str:
        used = {k.split("/")[2] for k in self.store.list(f"models/{role}/") if k.count("/") >= 3}
        nums = [int(v[1:]) for v in used if _VERSION_RE.match(v)]
        return f"v{(max(nums) + 1) if nums else 1:04d}"

    def aliases(self) -> dict:
        if not self.store.exists(ALIASES_KEY):
            return {}
        return json.loads(self.store.get_bytes(ALIASES_KEY))

    def set_alias(self, role: str, alias: str, version: str, *, reason: str = "", forced: bool = False,
                  rollback: bool = False) -> None:
        """Point `alias` at `version`, and append the move to the alias history (who, when,
        from, to, why). Pointing an alias where it already points records nothing."""
        self._check_role(role)
        if _VERSION_RE.match(alias):
            raise ValueError("an alias cannot look like a version")
        if version not in self.versions(role):
            raise KeyError(f"no {role} version {version}")
        data = self.aliases()
        before = data.get(role, {}).get(alias)
        if before == version:
            return
        data.setdefault(role, {})[alias] = version
        self.store.put_bytes(ALIASES_KEY, json.dumps(data, indent=2, sort_keys=True).encode())
        move = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "by": actor(), "role": role,
                "alias": alias, "from": before, "to": version, "reason": reason, "forced": forced,
                "rollback": rollback}
        history = self.store.get_bytes(HISTORY_KEY) if self.store.exists(HISTORY_KEY) else b""
        self.store.put_bytes(HISTORY_KEY, history + json.dumps(move, sort_keys=True).encode() + b"\n")

    # -- evaluations (what champion/challenger gates compare) -------------------
    def record_evaluation(self, summary: dict) -> str:
        """Keep an evaluation of a (prefilter, heavy) pair on held-out days (`models.gates.summarize`);
        returns its key. A later evaluation of the same pair on the same days replaces it."""
        pair, days = summary["models"], sorted(summary["dates"])
        for role in ROLES:
            self.resolve(role, pair[role])
        key = f"{EVALUATIONS_PREFIX}{pair['prefilter']}+{pair['heavy']}/{days[0]}_{days[-1]}_{len(days)}.json"
        record = dict(summary, recorded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self.store.put_bytes(key, json.dumps(record, indent=2, sort_keys=True).encode())
        return key

    def evaluations(self, prefilter: str, heavy: str) -> list[dict]:
        """The recorded evaluations of a pair of versions, newest first."""
        found = [json.loads(self.store.get_bytes(k))
                 for k in self.store.list(f"{EVALUATIONS_PREFIX}{prefilter}+{heavy}/") if k.endswith(".json")]
        return sorted(found, key=lambda e: e["recorded_at"], reverse=True)

    def alias_history(self, role: str | None = None, alias: str | None = None) -> list[dict]:
        """Every alias move, oldest first (optionally of one role and alias)."""
        if not self.store.exists(HISTORY_KEY):
            return []
        moves = [json.loads(line) for line in self.store.get_bytes(HISTORY_KEY).decode().splitlines() if line]
        return [m for m in moves if (role is None or m["role"] == role) and (alias is None or m["alias"] == alias)]

    def rollback(self, role: str, alias: str = "production", reason: str = "") -> tuple[str, str]:
        """Move `alias` back one step: to the version it pointed at before its last move that
        was not itself undone. Repeated rollbacks walk further back. Returns (from, to)."""
        earlier: list[str] = []  # the versions the alias left, most recent last
        for move in self.alias_history(role, alias):
            if move["rollback"]:
                if earlier:
                    earlier.pop()
            elif move["from"]:
                earlier.append(move["from"])
        current = self.aliases().get(role, {}).get(alias)
        if not earlier or current is None:
            raise ValueError(f"{role} {alias} has no earlier version to roll back to "
                             f"(see `percolate models history --role {role}`)")
        self.set_alias(role, alias, earlier[-1], reason=reason or "rollback", rollback=True)
        return current, earlier[-1]

    def resolve(self, role: str, alias_or_version: str) -> str:
        self._check_role(role)
        if _VERSION_RE.match(alias_or_version):
            if alias_or_version not in self.versions(role):
                raise KeyError(f"no {role} version {alias_or_version}")
            return alias_or_version
        try:
            return self.aliases()[role][alias_or_version]
        except KeyError:
            raise KeyError(f"no {role} alias {alias_or_version!r}") from None

    def spec(self, role: str, version: str) -> dict:
        version = self.resolve(role, version)
        return json.loads(self.store.get_bytes(self._key(role, version, "spec.json")))

    def list(self, role: str) -> list[dict]:
        """All specs of a role, oldest first, each with an "aliases" list added."""
        by_version: dict[str, list[str]] = {}
        for alias, v in self.aliases().get(role, {}).items():
            by_version.setdefault(v, []).append(alias)
        return [{**self.spec(role, v), "aliases": sorted(by_version.get(v, []))}
                for v in self.versions(role)]

    # -- register / load -------------------------------------------------------
    def register(self, role: str, model: nn.Module | None, spec: dict,
                 torchscript_path: str | Path | None = None) -> str:
        """Store a model and its spec; returns the new version ("v0001", ...). Sets no alias.

        Built-in: pass `model` and spec["arch"] in BUILTIN_ARCHS with arch_kwargs.
        Bring-your-own: pass `torchscript_path` (arch becomes "torchscript").
        spec needs at least input and class_names; threshold defaults to 0.5; the caller
        says which code made the model (`code_version`).
        """
        from safetensors.torch import save as st_save

        from models.preprocess import InputSpec

        self._check_role(role)
        spec = dict(spec)
        if "input" not in spec or "class_names" not in spec:
            raise ValueError("spec needs 'input' (InputSpec.to_dict()) and 'class_names'")
        if isinstance(spec["input"], InputSpec):
            spec["input"] = spec["input"].to_dict()
        in_spec = InputSpec.from_dict(spec["input"])
        spec["input"] = in_spec.to_dict()
        spec["class_names"] = [str(c) for c in spec["class_names"]]
        files: dict[str, bytes] = {}
        module: nn.Module | None = model
        if torchscript_path is not None:
            data = Path(torchscript_path).read_bytes()
            module = load_torchscript_bytes(data)  # validates before anything is stored
            spec["arch"], spec["arch_kwargs"] = "torchscript", {}
            files["model.pt"] = data
        else:
            if spec.get("arch") not in BUILTIN_ARCHS:
                raise ValueError(f"arch must be one of {BUILTIN_ARCHS} (or give torchscript_path)")
            if module is None:
                raise ValueError("give a model or a torchscript_path")
            state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
            files["weights.safetensors"] = st_save(state)
        spec.setdefault("arch_kwargs", {})
        spec.setdefault("threshold", 0.5)
        spec["threshold"] = float(spec["threshold"])
        if role == "heavy":
            spec.setdefault("aggregation", {"min_frames": 1, "min_score": spec["threshold"]})
        if spec.get("flops_per_frame") is None and spec["arch"] in BUILTIN_ARCHS:
            from models.flops import count_flops
            spec["flops_per_frame"] = count_flops(module, (3, in_spec.height, in_spec.width))
        spec.setdefault("flops_per_frame", None)
        spec.setdefault("metrics", {})
        spec.setdefault("training_dates", [])
        spec.setdefault("code_version", None)
        spec.setdefault("output", "logits")
        self._smoke_test(role, module, spec)
        return self._store(role, spec, files)

    def import_version(self, role: str, spec: dict, files: dict[str, bytes]) -> str:
        """Register a version from a spec and its files as they are (the shipped models).

        The files must match the sha256 the spec records; the model is built from them and
        smoke-tested before anything is stored. Returns the new version.
        """
        self._check_role(role)
        spec = {k: v for k, v in spec.items() if k not in ("role", "version", "created_at")}
        recorded = spec.get("files") or {}
        if set(recorded) != set(files):
            raise ValueError(f"{role}: files {sorted(files)} do not match the spec's {sorted(recorded)}")
        for name, data in files.items():
            if sha256(data) != recorded[name]:
                raise ValueError(f"{role}: {name} does not match the sha256 in its spec")
        self._smoke_test(role, self._module(spec, files), spec)
        return self._store(role, spec, files)

    def _store(self, role: str, spec: dict, files: dict[str, bytes]) -> str:
        spec = dict(spec, files={name: sha256(data) for name, data in files.items()})
        version = self._next_version(role)
        spec["role"], spec["version"] = role, version
        spec["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for name, data in files.items():
            self.store.put_bytes(self._key(role, version, name), data)
        # spec.json is written last: a version exists once its spec does.
        self.store.put_bytes(self._key(role, version, "spec.json"),
                             json.dumps(spec, indent=2, sort_keys=True).encode())
        return version

    @staticmethod
    def _smoke_test(role: str, module: nn.Module, spec: dict) -> None:
        """Check the output shape against the role and class names before storing."""
        import torch

        from models.predictor import Predictor

        lm = Predictor(role, "unregistered", spec, module)
        x = torch.zeros(2, 3, lm.input.height, lm.input.width)
        out = lm.predict_tensor(x)
        want = (2,) if role == "prefilter" else (2, len(lm.class_names) + 1)
        if out.shape != want:
            raise ValueError(f"{role} model outputs shape {out.shape}, spec implies {want}")

    def _file(self, role: str, version: str, spec: dict, name: str) -> bytes:
        """A file of the version, after checking it against the sha256 its spec records."""
        if name not in (spec.get("files") or {}):
            raise ValueError(f"{role} {version}: its spec records no sha256 for {name}; register it again")
        data = self.store.get_bytes(self._key(role, version, name))
        if sha256(data) != spec["files"][name]:
            raise ValueError(f"{role} {version}: {name} does not match the sha256 in its spec "
                             f"(changed after registration?)")
        return data

    def files(self, role: str, alias_or_version: str) -> tuple[dict, dict[str, bytes]]:
        """A version's spec and its files, each checked against its sha256."""
        version = self.resolve(role, alias_or_version)
        spec = self.spec(role, version)
        return spec, {name: self._file(role, version, spec, name) for name in spec.get("files") or {}}

    def load(self, role: str, alias_or_version: str = "production") -> Predictor:
        from models.predictor import Predictor

        spec, files = self.files(role, alias_or_version)
        return Predictor(role, spec["version"], spec, self._module(spec, files))

    @staticmethod
    def _module(spec: dict, files: dict[str, bytes]) -> nn.Module:
        from safetensors.torch import load as st_load

        if spec["arch"] == "torchscript":
            return load_torchscript_bytes(files["model.pt"])
        module = build_module(spec["arch"], spec.get("arch_kwargs", {}))
        module.load_state_dict(st_load(files["weights.safetensors"]))
        return module


def actor() -> str:
    """Who moves an alias: PERCOLATE_ACTOR (a DAG run, a CI job), else user@host."""
    import getpass
    import os
    import socket

    return os.environ.get("PERCOLATE_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
