"""Bring-your-own models are contained: the smoke test's child, bounds, sha256 at every load and
before a run, and the crop/location contract of a pair (models.smoke, models.admission)."""

from __future__ import annotations

import json
import resource
import time

import pytest
import torch
from torch import nn

from models.admission import ModelRefused, admit_pair, check_bounds, check_pair
from models.heavy import MobileNetLike
from models.prefilter import PrefilterCNN
from models.preprocess import InputSpec
from models.registry import ModelRegistry
from percolate.io.store import LocalStore
from workflows.cli import main


class HangsUnlessTwo(nn.Module):
    """Answers for a batch of 2 (the old smoke test's) and loops forever for any other."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, i = x.shape[0], 0
        while n != 2:
            i += 1
        return self.fc(x.mean(dim=(2, 3)))


class MeanPrefilter(nn.Module):
    """A prefilter without a location map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))


class MapPrefilter(nn.Module):
    """A prefilter that exports its location map (the contract for brought prefilters)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_map(x).amax(dim=(1, 2))

    @torch.jit.export
    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[:, 0]


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(LocalStore(tmp_path / "store"))


def _script(module: nn.Module, path) -> str:
    torch.jit.script(module.eval()).save(str(path))
    return str(path)


def _builtin_pair(registry, crop: float | None = None) -> tuple[str, str]:
    torch.manual_seed(0)
    pf = registry.register("prefilter", PrefilterCNN().eval(), {
        "arch": "prefilter_cnn", "input": InputSpec(128, 72).to_dict(), "class_names": ["cup"]})
    hv = registry.register("heavy", MobileNetLike(3, width_mult=0.35).eval(), {
        "arch": "mobilenet_like", "arch_kwargs": {"num_classes": 3, "width_mult": 0.35},
        "input": InputSpec(64, 64, crop=crop).to_dict(), "class_names": ["a", "b", "c"]})
    return pf, hv


def test_a_model_that_hangs_on_other_batch_sizes_is_refused_within_the_limit(registry, tmp_path):
    path = _script(HangsUnlessTwo(), tmp_path / "hang.pt")
    spec = {"input": InputSpec(32, 32).to_dict(), "class_names": ["a", "b", "c"]}
    started = time.monotonic()
    with pytest.raises(ModelRefused, match=r"no answer within 3 s at batch size 1"):
        registry.register("heavy", None, spec, torchscript_path=path, time_limit_s=3, load_limit_s=120)
    assert time.monotonic() - started < 120 + 3 + 30
    assert registry.versions("heavy") == [] and registry.store.list("models/") == []


def test_a_huge_input_spec_is_refused_without_allocating(registry, tmp_path, monkeypatch, capsys):
    path = _script(MeanPrefilter(), tmp_path / "m.pt")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for inp, why in (({"width": 100000, "height": 100000}, "each side must be 1..1024"),
                     ({"width": 1024, "height": 1024}, "at most 589824")):
        with pytest.raises(ModelRefused, match=why):
            registry.register("prefilter", None, {"input": inp, "class_names": ["cup"]}, torchscript_path=path)
    with pytest.raises(ModelRefused, match="1001 classes; at most 1000"):
        check_bounds("heavy", {"input": {"width": 8, "height": 8}, "class_names": [str(i) for i in range(1001)]})
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 1024  # KiB: nothing near 120 GB
    # the command line says why
    monkeypatch.setenv("PERCOLATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERCOLATE_STORE", str(tmp_path / "store"))
    assert main(["models", "register", "--role", "heavy", "--file", path, "--input-size", "100000x100000",
                 "--classes", "a,b"]) == 1
    assert "100000x100000 is out of bounds" in capsys.readouterr().err
    assert registry.versions("heavy") == registry.versions("prefilter") == []


def test_a_stored_spec_edited_out_of_bounds_is_refused_at_load_and_before_a_run(registry):
    pf, hv = _builtin_pair(registry)
    key = f"models/heavy/{hv}/spec.json"
    spec = json.loads(registry.store.get_bytes(key))
    registry.store.put_bytes(key, json.dumps(dict(spec, input=dict(spec["input"], width=100000))).encode())
    with pytest.raises(ModelRefused, match="out of bounds"):
        registry.load("heavy", hv)
    with pytest.raises(ModelRefused, match="out of bounds"):
        admit_pair(registry, pf, hv)


def test_a_model_file_changed_after_registration_is_refused_at_load_and_before_a_run(registry, tmp_path):
    pf, hv = _builtin_pair(registry)
    for role, version in (("prefilter", pf), ("heavy", hv)):
        registry.set_alias(role, "production", version)
    assert admit_pair(registry, "production", "production") == {"prefilter": pf, "heavy": hv}
    key = f"models/heavy/{hv}/weights.safetensors"
    data = registry.store.get_bytes(key)
    registry.store.put_bytes(key, data[:-1] + bytes([data[-1] ^ 1]))
    for attempt in (lambda: registry.load("heavy", "production"),
                    lambda: admit_pair(registry, "production", "production")):
        with pytest.raises(ModelRefused, match="weights.safetensors does not match the sha256"):
            attempt()


def test_legacy_specs_without_sha256_builtin_loads_torchscript_is_refused(registry, tmp_path):
    pf, _ = _builtin_pair(registry)
    ts = registry.register("prefilter", None, {"input": InputSpec(32, 32).to_dict(), "class_names": ["cup"]},
                           torchscript_path=_script(MeanPrefilter(), tmp_path / "m.pt"))
    for version in (pf, ts):
        key = f"models/prefilter/{version}/spec.json"
        spec = json.loads(registry.store.get_bytes(key))
        del spec["files"]
        registry.store.put_bytes(key, json.dumps(spec).encode())
    assert registry.load("prefilter", pf).spec["arch"] == "prefilter_cnn"
    with pytest.raises(ModelRefused, match="records no sha256 is refused"):
        registry.load("prefilter", ts)


def test_crop_needs_a_prefilter_with_a_location_map(registry, tmp_path):
    _, hv = _builtin_pair(registry, crop=0.5)
    spec = {"input": InputSpec(64, 36).to_dict(), "class_names": ["cup"]}
    blind = registry.register("prefilter", None, spec, torchscript_path=_script(MeanPrefilter(), tmp_path / "a.pt"))
    seeing = registry.register("prefilter", None, spec, torchscript_path=_script(MapPrefilter(), tmp_path / "b.pt"))
    assert registry.spec("prefilter", blind)["localizes"] is False
    assert registry.spec("prefilter", seeing)["localizes"] is True
    with pytest.raises(ModelRefused, match="gives no location map"):
        admit_pair(registry, blind, hv)
    assert admit_pair(registry, seeing, hv) == {"prefilter": seeing, "heavy": hv}
    assert registry.load("prefilter", seeing).localizes
    # without --crop any prefilter will do; a TorchScript spec that does not say is taken as blind
    check_pair({"arch": "torchscript"}, {"input": {"crop": None}})
    with pytest.raises(ModelRefused):
        check_pair({"arch": "torchscript"}, {"input": {"crop": 0.5}})
