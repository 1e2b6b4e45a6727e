"""Model registry in the object store.

Layout:
    models/<role>/<version>/spec.json
    models/<role>/<version>/weights.safetensors   (built-in archs)
    models/<role>/<version>/model.pt              (bring-your-own TorchScript)
    models/aliases.json   {"prefilter": {"production": "v0001", ...}, "heavy": {...}}
    models/alias_history.jsonl   every alias move: who, when, from, to, why (rollback reads it)
    models/evaluations/<prefilter>+<heavy>/...json   a pair's held-out evaluations (the gates read them)

The spec records the sha256 of every file (`files`); every load checks them and the spec's
bounds (`models.admission`). Weights are only read with safetensors, or with torch.jit.load
after checking the file is a TorchScript archive (code: see docs/promotion.md; its smoke test
runs in a child process under limits, `models.smoke`). Plain pickles are refused. A spec from
before sha256s were recorded (no `files`) loads only for a built-in architecture (safetensors
weights are data). The registry never changes torch's thread settings.

Concurrent writers: a new version claims its number by creating `claim.json` in its folder
only if absent (`put_file_if_absent`), so two registrations never share a number; alias moves
and history lines are read-modify-writes that never lose a concurrent one (`update_bytes`: a
file lock on a local store, conditional PUTs on S3).

torch is imported where a model is built, stored or loaded, not at import: reading specs
and aliases (what a Spark job's driver and the DAG's tasks do) stays cheap (torch's import
takes about 4 s on the 2-core machine).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from models.admission import ModelRefused, check_bounds

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
        seen: dict = {}

        def move_alias(old: bytes | None) -> bytes:  # may run again when another writer got there first
            data = json.loads(old) if old else {}
            seen["before"] = data.get(role, {}).get(alias)
            data.setdefault(role, {})[alias] = version
            return json.dumps(data, indent=2, sort_keys=True).encode()

        current = self.aliases().get(role, {}).get(alias)
        if current == version:
            return
        self.store.update_bytes(ALIASES_KEY, move_alias)
        if seen["before"] == version:  # a concurrent writer made the same move
            return
        move = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "by": actor(), "role": role,
                "alias": alias, "from": seen["before"], "to": version, "reason": reason, "forced": forced,
                "rollback": rollback}
        line = json.dumps(move, sort_keys=True).encode() + b"\n"
        self.store.update_bytes(HISTORY_KEY, lambda old: (old or b"") + line)

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
                 torchscript_path: str | Path | None = None, **smoke_limits) -> str:
        """Store a model and its spec; returns the new version ("v0001", ...). Sets no alias.

        Built-in: pass `model` and spec["arch"] in BUILTIN_ARCHS with arch_kwargs.
        Bring-your-own: pass `torchscript_path` (arch becomes "torchscript"); it is never
        loaded in this process, only in the smoke test's child (`smoke_limits`: see
        `models.smoke.smoke_test_isolated`).
        spec needs at least input and class_names (within `models.admission`'s bounds);
        threshold defaults to 0.5; the caller says which code made the model (`code_version`).
        """
        from models.preprocess import InputSpec

        self._check_role(role)
        spec = dict(spec)
        if "input" not in spec or "class_names" not in spec:
            raise ValueError("spec needs 'input' (InputSpec.to_dict()) and 'class_names'")
        if isinstance(spec["input"], InputSpec):
            spec["input"] = spec["input"].to_dict()
        check_bounds(role, spec)  # before anything is built or allocated
        in_spec = InputSpec.from_dict(spec["input"])
        spec["input"] = in_spec.to_dict()
        spec["class_names"] = [str(c) for c in spec["class_names"]]
        files: dict[str, bytes] = {}
        if torchscript_path is not None:
            data = Path(torchscript_path).read_bytes()
            if not is_torchscript_archive(data):
                raise ModelRefused("not a TorchScript archive (plain pickles / checkpoints are refused)")
            spec["arch"], spec["arch_kwargs"] = "torchscript", {}
            files["model.pt"] = data
        else:
            from safetensors.torch import save as st_save

            if spec.get("arch") not in BUILTIN_ARCHS:
                raise ValueError(f"arch must be one of {BUILTIN_ARCHS} (or give torchscript_path)")
            if model is None:
                raise ValueError("give a model or a torchscript_path")
            state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
            files["weights.safetensors"] = st_save(state)
        spec.setdefault("arch_kwargs", {})
        spec.setdefault("threshold", 0.5)
        spec["threshold"] = float(spec["threshold"])
        if role == "heavy":
            spec.setdefault("aggregation", {"min_frames": 1, "min_score": spec["threshold"]})
        if spec.get("flops_per_frame") is None and spec["arch"] in BUILTIN_ARCHS:
            from models.flops import count_flops
            spec["flops_per_frame"] = count_flops(model, (3, in_spec.height, in_spec.width))
        spec.setdefault("flops_per_frame", None)
        spec.setdefault("metrics", {})
        spec.setdefault("training_dates", [])
        spec.setdefault("code_version", None)
        spec.setdefault("output", "logits")
        spec = self._smoke(role, spec, files, model, **smoke_limits)
        return self._store(role, spec, files)

    def import_version(self, role: str, spec: dict, files: dict[str, bytes]) -> str:
        """Register a version from a spec and its files as they are (the shipped models).

        The files must match the sha256 the spec records; the model is built from them and
        smoke-tested before anything is stored. Returns the new version.
        """
        self._check_role(role)
        spec = {k: v for k, v in spec.items() if k not in ("role", "version", "created_at")}
        check_bounds(role, spec)
        recorded = spec.get("files") or {}
        if set(recorded) != set(files):
            raise ValueError(f"{role}: files {sorted(files)} do not match the spec's {sorted(recorded)}")
        for name, data in files.items():
            if sha256(data) != recorded[name]:
                raise ValueError(f"{role}: {name} does not match the sha256 in its spec")
        return self._store(role, self._smoke(role, spec, files), files)

    def _store(self, role: str, spec: dict, files: dict[str, bytes]) -> str:
        spec = dict(spec, files={name: sha256(data) for name, data in files.items()})
        version = self._claim_version(role)
        spec["role"], spec["version"] = role, version
        spec["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for name, data in files.items():
            self.store.put_bytes(self._key(role, version, name), data)
        # spec.json is written last: a version exists once its spec does.
        self.store.put_bytes(self._key(role, version, "spec.json"),
                             json.dumps(spec, indent=2, sort_keys=True).encode())
        return version

    def _claim_version(self, role: str, attempts: int = 100) -> str:
        """The next free version number, claimed by creating its `claim.json` only if absent:
        of two concurrent registrations, one gets it and the other tries the number after."""
        claim = json.dumps({"by": actor(), "pid": os.getpid(),
                            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode()
        with tempfile.NamedTemporaryFile(prefix="percolate-claim-") as fh:
            fh.write(claim)
            fh.flush()
            for _ in range(attempts):
                version = self._next_version(role)
                if self.store.put_file_if_absent(self._key(role, version, "claim.json"), fh.name):
                    return version
        raise RuntimeError(f"could not claim a {role} version number in {attempts} attempts (busy registry?)")

    def _smoke(self, role: str, spec: dict, files: dict[str, bytes], module: nn.Module | None = None,
               **limits) -> dict:
        """Run the model at several batch sizes before storing it (`models.smoke`); a TorchScript
        model only in a child process under limits. Returns the spec, with `localizes` for a
        TorchScript prefilter (whether it gives a location map)."""
        from models.smoke import BUILTIN_BATCH_SIZES, run_checks, smoke_test_isolated

        if spec["arch"] == "torchscript":
            found = smoke_test_isolated(role, spec, files, **limits)
            return dict(spec, localizes=found["localizes"]) if role == "prefilter" else spec
        from models.predictor import Predictor

        predictor = Predictor(role, "unregistered", spec, module or self.build(spec, files))
        run_checks(predictor, limits.get("batch_sizes", BUILTIN_BATCH_SIZES))
        return spec

    def _file(self, role: str, version: str, spec: dict, name: str) -> bytes:
        """A file of the version, after checking it against the sha256 its spec records."""
        if name not in (spec.get("files") or {}):
            raise ValueError(f"{role} {version}: its spec records no sha256 for {name}; register it again")
        data = self.store.get_bytes(self._key(role, version, name))
        if sha256(data) != spec["files"][name]:
            raise ModelRefused(f"{role} {version}: {name} does not match the sha256 in its spec "
                               f"(changed after registration?); refused")
        return data

    def files(self, role: str, alias_or_version: str) -> tuple[dict, dict[str, bytes]]:
        """A version's spec and its files, each checked against its sha256.

        A spec from before sha256s were recorded (no `files`): a built-in architecture's
        weights (safetensors: data, never code) are read unchecked; TorchScript is refused.
        """
        version = self.resolve(role, alias_or_version)
        spec = self.spec(role, version)
        if "files" not in spec:
            if spec.get("arch") not in BUILTIN_ARCHS:
                raise ModelRefused(f"{role} {version}: a TorchScript model whose spec records no sha256 is "
                                   f"refused (it is code); register the file again")
            name = "weights.safetensors"
            return spec, {name: self.store.get_bytes(self._key(role, version, name))}
        return spec, {name: self._file(role, version, spec, name) for name in spec["files"]}

    def load(self, role: str, alias_or_version: str = "production") -> Predictor:
        from models.predictor import Predictor

        version = self.resolve(role, alias_or_version)
        check_bounds(role, self.spec(role, version))
        spec, files = self.files(role, version)
        return Predictor(role, spec["version"], spec, self.build(spec, files))

    @staticmethod
    def build(spec: dict, files: dict[str, bytes]) -> nn.Module:
        """The module of a spec and its (checked) files."""
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
