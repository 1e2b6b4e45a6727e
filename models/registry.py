"""Model registry in the object store.

Layout:
    models/<role>/<version>/spec.json
    models/<role>/<version>/weights.safetensors   (built-in archs)
    models/<role>/<version>/model.pt              (bring-your-own TorchScript)
    models/aliases.json   {"prefilter": {"production": "v0001", ...}, "heavy": {...}}

Weights are only ever read with safetensors or torch.jit.load (after checking the
file really is a TorchScript archive); checkpoints are read with weights_only=True.
Plain pickles are refused. The registry never changes torch's thread settings.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from models.preprocess import InputSpec, decode_batch, prepare, to_tensor
from percolate.provenance import code_version

ROLES = ("prefilter", "heavy")
BUILTIN_ARCHS = ("prefilter_cnn", "prefilter_ensemble", "mobilenet_like", "mobilenet_ensemble")
ALIASES_KEY = "models/aliases.json"
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
    if not is_torchscript_archive(data):
        raise ValueError("not a TorchScript archive (plain pickles / checkpoints are refused)")
    return torch.jit.load(io.BytesIO(data), map_location="cpu")


def load_checkpoint_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A .pt/.pth state-dict checkpoint, read with torch.load(weights_only=True) only."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but plain tensors/containers
        raise ValueError(f"refusing checkpoint {path}: {exc}") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"checkpoint {path} is not a state dict of tensors")
    return obj


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode), with its spec."""

    role: str
    version: str
    spec: dict
    module: nn.Module
    input: InputSpec = field(init=False)

    def __post_init__(self):
        self.input = InputSpec.from_dict(self.spec["input"])
        self.module.eval()

    @property
    def class_names(self) -> list[str]:
        return list(self.spec["class_names"])

    @property
    def threshold(self) -> float:
        return float(self.spec["threshold"])

    @property
    def aggregation(self) -> dict | None:
        return self.spec.get("aggregation")

    def predict_tensor(self, x: torch.Tensor) -> np.ndarray:
        """Preprocessed NCHW batch -> probabilities (see predict_jpegs)."""
        with torch.inference_mode():
            out = self.module(x)
            if isinstance(out, (tuple, list)):
                out = out[0]
            out = out.float()
            already_probs = self.spec.get("output", "logits") == "probabilities"
            if self.role == "prefilter":
                out = out.reshape(out.shape[0], -1)[:, -1]
                probs = out if already_probs else torch.sigmoid(out)
            else:
                probs = out if already_probs else torch.softmax(out, dim=1)
        return probs.cpu().numpy()

    def decode_inputs(self, jpegs: list[bytes], centers=None) -> np.ndarray:
        """JPEG bytes -> the model's inputs before normalisation, NxHxWx3 uint8 (cropped
        around `centers` when the model's input crops)."""
        return decode_batch(jpegs, self.input, centers)

    def predict_inputs(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Inputs from `decode_inputs` -> probabilities (see predict_jpegs)."""
        width = 1 if self.role == "prefilter" else len(self.class_names) + 1
        parts = [self.predict_tensor(to_tensor(inputs[i:i + batch_size], self.input))
                 for i in range(0, len(inputs), batch_size)]
        if not parts:
            return np.zeros((0,) if self.role == "prefilter" else (0, width), np.float32)
        return np.concatenate(parts, axis=0)

    def predict_jpegs(self, jpegs: list[bytes], batch_size: int = 64, centers=None) -> np.ndarray:
        """Prefilter: (N,) P(positive). Heavy: (N, C+1) softmax, column 0 = none.

        `centers` ((N, 2), x/y in [0, 1]) places the crop of models whose input crops.
        """
        parts = [self.predict_inputs(self.decode_inputs(jpegs[i:i + batch_size],
                                                        None if centers is None else centers[i:i + batch_size]))
                 for i in range(0, len(jpegs), batch_size)]
        return np.concatenate(parts, axis=0) if parts else self.predict_inputs(self.decode_inputs([]))

    @property
    def localizes(self) -> bool:
        """True when the model gives a location map (built-in prefilters)."""
        return hasattr(self.module, "logit_map")

    def locate_jpegs(self, jpegs: list[bytes],
                     batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prefilter scores (N,), where in the frame they peak ((N, 2), x/y in [0, 1]), and the
        FLOPs spent on each frame (N,): less than the spec's `flops_per_frame` on frames an
        early-exit ensemble stops after its first member; NaN when the spec does not know.

        Models without a location map give the frame centre.
        """
        if not self.localizes:
            scores = self.predict_jpegs(jpegs, batch_size)
            return scores, np.full((len(scores), 2), 0.5, dtype=np.float32), self._frame_flops(None, len(scores))
        from models.prefilter import map_peaks

        scores, centers, opened = [], [], []
        gated = hasattr(self.module, "gated_logit_map")
        with torch.inference_mode():
            for i in range(0, len(jpegs), batch_size):
                x = prepare(jpegs[i:i + batch_size], self.input)
                maps, is_open = self.module.gated_logit_map(x) if gated else (self.module.logit_map(x), None)
                peak, where = map_peaks(maps)
                scores.append(torch.sigmoid(peak).numpy())
                centers.append(where.numpy())
                if is_open is not None:
                    opened.append(is_open.numpy())
        if not scores:
            return np.zeros(0, np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.float64)
        scores = np.concatenate(scores)
        return scores, np.concatenate(centers), self._frame_flops(np.concatenate(opened) if gated else None,
                                                                  len(scores))

    def _frame_flops(self, opened: np.ndarray | None, n: int) -> np.ndarray:
        """FLOPs per frame: the spec's figure, or for an early-exit ensemble its first member's
        share of it plus the others' on the frames that opened the gate."""
        full = self.spec.get("flops_per_frame")
        if full is None:
            return np.full(n, np.nan)
        if opened is None:
            return np.full(n, float(full))
        from models.prefilter import gated_flops

        return gated_flops(float(full), len(self.module.members), opened)


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

    def set_alias(self, role: str, alias: str, version: str) -> None:
        self._check_role(role)
        if _VERSION_RE.match(alias):
            raise ValueError("an alias cannot look like a version")
        if version not in self.versions(role):
            raise KeyError(f"no {role} version {version}")
        data = self.aliases()
        data.setdefault(role, {})[alias] = version
        self.store.put_bytes(ALIASES_KEY, json.dumps(data, indent=2, sort_keys=True).encode())

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
                 torchscript_path: str | Path | None = None,
                 checkpoint_path: str | Path | None = None) -> str:
        """Store a model and its spec; returns the new version ("v0001", ...).

        Built-in: pass `model` (or `checkpoint_path`, a state dict read with
        weights_only=True) and spec["arch"] in BUILTIN_ARCHS with arch_kwargs.
        Bring-your-own: pass `torchscript_path` (arch becomes "torchscript").
        spec needs at least input and class_names; threshold defaults to 0.5.
        """
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
                if checkpoint_path is None:
                    raise ValueError("give a model, a checkpoint_path or a torchscript_path")
                module = build_module(spec["arch"], spec.get("arch_kwargs", {}))
                module.load_state_dict(load_checkpoint_state_dict(checkpoint_path))
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
        spec.setdefault("code_version", code_version())
        spec.setdefault("output", "logits")
        self._smoke_test(role, module, spec)

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
        lm = LoadedModel(role, "unregistered", spec, module)
        x = torch.zeros(2, 3, lm.input.height, lm.input.width)
        out = lm.predict_tensor(x)
        want = (2,) if role == "prefilter" else (2, len(lm.class_names) + 1)
        if out.shape != want:
            raise ValueError(f"{role} model outputs shape {out.shape}, spec implies {want}")

    def load(self, role: str, alias_or_version: str = "production") -> LoadedModel:
        version = self.resolve(role, alias_or_version)
        spec = self.spec(role, version)
        if spec["arch"] == "torchscript":
            module = load_torchscript_bytes(self.store.get_bytes(self._key(role, version, "model.pt")))
        else:
            module = build_module(spec["arch"], spec.get("arch_kwargs", {}))
            state = st_load(self.store.get_bytes(self._key(role, version, "weights.safetensors")))
            module.load_state_dict(state)
        return LoadedModel(role, version, spec, module)
