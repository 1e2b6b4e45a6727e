import hashlib
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from _models_testutil import frame
from models.heavy import MobileNetLike
from models.prefilter import PrefilterCNN
from models.preprocess import InputSpec
from models.registry import ModelRegistry
from percolate.io.store import LocalStore

BRANDS = ["alpha", "beta", "gamma"]


def _jpegs(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [frame(rng, "red" if i % 2 else None) for i in range(n)]


def _heavy_spec(**extra):
    return {"arch": "mobilenet_like", "arch_kwargs": {"num_classes": 3, "width_mult": 0.35},
            "input": InputSpec(256, 144).to_dict(), "class_names": BRANDS, "threshold": 0.9,
            "aggregation": {"min_frames": 2, "min_score": 0.9}, **extra}


def predict(model, jpegs):
    return model.predict_inputs(model.decode_inputs(jpegs))


def locate(model, jpegs):
    return model.locate_inputs(model.decode_inputs(jpegs))


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(LocalStore(tmp_path / "store"))


def test_round_trip_aliases_and_identical_predictions(registry):
    torch.manual_seed(0)
    pf = PrefilterCNN().eval()
    pf_spec = {"arch": "prefilter_cnn", "arch_kwargs": {}, "input": InputSpec(128, 72).to_dict(),
               "class_names": ["cup"], "threshold": 0.2, "training_dates": ["2024-01-01"]}
    v1 = registry.register("prefilter", pf, pf_spec)
    v2 = registry.register("prefilter", pf, pf_spec)
    assert (v1, v2) == ("v0001", "v0002")
    registry.set_alias("prefilter", "production", v1)
    registry.set_alias("prefilter", "challenger", v2)
    assert registry.resolve("prefilter", "production") == "v0001"
    assert registry.resolve("prefilter", "v0002") == "v0002"
    assert [s["aliases"] for s in registry.list("prefilter")] == [["production"], ["challenger"]]
    with pytest.raises(KeyError):
        registry.set_alias("prefilter", "production", "v0009")
    with pytest.raises(KeyError):
        registry.resolve("heavy", "production")

    hv = MobileNetLike(3, width_mult=0.35).eval()
    hv_version = registry.register("heavy", hv, _heavy_spec())
    registry.set_alias("heavy", "production", hv_version)

    jpegs = _jpegs()
    threads = torch.get_num_threads()
    lp = registry.load("prefilter")
    lh = registry.load("heavy", "production")
    assert torch.get_num_threads() == threads
    assert (lp.role, lp.version, lp.spec["threshold"], lp.class_names) == ("prefilter", "v0001", 0.2, ["cup"])
    assert lh.class_names == BRANDS and lh.input == InputSpec(256, 144)
    assert not lp.module.training and not lh.module.training

    from models.preprocess import decode_batch, to_tensor
    with torch.inference_mode():
        want_p = torch.sigmoid(pf(to_tensor(decode_batch(jpegs, lp.input), lp.input))).numpy()
        want_h = torch.softmax(hv(to_tensor(decode_batch(jpegs, lh.input), lh.input)), 1).numpy()
    got_p = predict(lp, jpegs)
    got_h = predict(lh, jpegs)
    assert got_p.shape == (5,) and got_h.shape == (5, 4)
    # the weights round-trip bit for bit; the predictions differ from the plain forward by the
    # float rounding of the batch norms folded into the convolutions (models.predictor)
    for loaded, original in ((lp.module, pf), (lh.module, hv)):
        want = original.state_dict()
        assert loaded.state_dict().keys() == want.keys()
        assert all(torch.equal(t, want[k]) for k, t in loaded.state_dict().items())
    np.testing.assert_allclose(got_p, want_p, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_h, want_h, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_h.sum(1), 1, atol=1e-5)

    spec = registry.spec("heavy", "production")
    for key in ("role", "version", "arch", "arch_kwargs", "input", "class_names", "threshold",
                "aggregation", "flops_per_frame", "metrics", "training_dates", "code_version",
                "created_at"):
        assert key in spec
    assert spec["flops_per_frame"] > 0
    store = registry.store
    assert store.exists("models/heavy/v0001/weights.safetensors")
    assert store.exists("models/aliases.json")


def test_wrong_output_shape_is_refused(registry):
    spec = _heavy_spec(class_names=["a", "b"])  # model has 3 classes
    with pytest.raises((ValueError, RuntimeError)):
        registry.register("heavy", MobileNetLike(3, width_mult=0.35), spec)
    assert registry.versions("heavy") == []


class CatDog(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_torchscript_bring_your_own(registry, tmp_path):
    path = tmp_path / "catdog.pt"
    torch.jit.script(CatDog().eval()).save(str(path))
    spec = {"input": InputSpec(96, 64).to_dict(), "class_names": ["cat", "dog"], "threshold": 0.7}
    version = registry.register("heavy", None, spec, torchscript_path=path)
    registry.set_alias("heavy", "production", version)
    loaded = registry.load("heavy")
    assert loaded.spec["arch"] == "torchscript" and loaded.class_names == ["cat", "dog"]
    assert registry.store.exists(f"models/heavy/{version}/model.pt")
    out = predict(loaded, _jpegs(4))
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out.sum(1), 1, atol=1e-5)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creates the marker file if ever unpickled


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickles_are_refused_and_never_run(registry, tmp_path):
    marker = tmp_path / "PWNED"
    plain = tmp_path / "evil.pt"
    plain.write_bytes(pickle.dumps(_Payload(str(marker))))
    zipped = tmp_path / "evil_zip.pth"
    torch.save({"weights": _Payload(str(marker))}, str(zipped))  # a torch.save zip checkpoint
    assert zipfile.is_zipfile(zipped) and not marker.exists()

    spec = {"input": InputSpec(64, 64).to_dict(), "class_names": ["cup"]}
    for path in (plain, zipped):
        with pytest.raises(ValueError):
            registry.register("prefilter", None, spec, torchscript_path=path)
    assert not marker.exists()
    assert registry.versions("prefilter") == []


def test_tampered_store_file_is_refused_at_load(registry, tmp_path):
    path = tmp_path / "catdog.pt"
    torch.jit.script(CatDog().eval()).save(str(path))
    spec = {"input": InputSpec(96, 64).to_dict(), "class_names": ["cat", "dog"]}
    version = registry.register("heavy", None, spec, torchscript_path=path)
    marker = tmp_path / "PWNED2"
    registry.store.put_bytes(f"models/heavy/{version}/model.pt", pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ValueError):
        registry.load("heavy", version)
    assert not marker.exists()


def test_a_changed_weights_file_is_refused_at_every_load(registry):
    torch.manual_seed(0)
    spec = {"arch": "prefilter_cnn", "input": InputSpec(128, 72).to_dict(), "class_names": ["cup"]}
    version = registry.register("prefilter", PrefilterCNN().eval(), spec)
    stored = registry.spec("prefilter", version)
    key = f"models/prefilter/{version}/weights.safetensors"
    data = registry.store.get_bytes(key)
    assert stored["files"] == {"weights.safetensors": hashlib.sha256(data).hexdigest()}
    registry.load("prefilter", version)
    registry.store.put_bytes(key, data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped
    with pytest.raises(ValueError, match="does not match the sha256"):
        registry.load("prefilter", version)


def test_heavy_ensemble_round_trip(registry):
    from models.heavy import HeavyEnsemble
    from models.preprocess import decode_batch, to_tensor

    torch.manual_seed(1)
    kwargs = {"members": 2, "num_classes": 3, "width_mult": 0.35}
    ens = HeavyEnsemble(**kwargs).eval()
    version = registry.register("heavy", ens, _heavy_spec(arch="mobilenet_ensemble", arch_kwargs=kwargs))
    loaded = registry.load("heavy", version)
    jpegs = _jpegs()
    with torch.inference_mode():
        want = torch.softmax(ens(to_tensor(decode_batch(jpegs, loaded.input), loaded.input)), 1).numpy()
    got = predict(loaded, jpegs)
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_prefilter_ensemble_round_trip(registry):
    from models.prefilter import PrefilterEnsemble, map_peaks
    from models.preprocess import decode_batch, to_tensor

    torch.manual_seed(2)
    kwargs = {"members": 3, "channels": [6, 12, 16, 24, 32]}
    ens = PrefilterEnsemble(**kwargs).eval()
    spec = {"arch": "prefilter_ensemble", "arch_kwargs": kwargs, "input": InputSpec(160, 90).to_dict(),
            "class_names": ["cup"], "threshold": 0.4}
    loaded = registry.load("prefilter", registry.register("prefilter", ens, spec))
    assert loaded.localizes and loaded.spec["threshold"] == 0.4
    jpegs = _jpegs()
    with torch.inference_mode():
        peak, where = map_peaks(ens.logit_map(to_tensor(decode_batch(jpegs, loaded.input), loaded.input)))
    scores, centers, flops = locate(loaded, jpegs)
    np.testing.assert_allclose(scores, torch.sigmoid(peak).numpy(), atol=1e-5)
    np.testing.assert_allclose(centers, where.numpy())
    np.testing.assert_allclose(predict(loaded, jpegs), scores, atol=1e-5)
    np.testing.assert_allclose(flops, loaded.spec["flops_per_frame"])  # no gate: every member on every frame


def test_gated_prefilter_ensemble_round_trip_and_frame_flops(registry):
    from models.flops import count_flops
    from models.prefilter import PrefilterEnsemble
    from models.preprocess import decode_batch, to_tensor

    torch.manual_seed(3)
    ens = PrefilterEnsemble(members=3, channels=[6, 12, 16, 24, 32]).eval()
    jpegs = _jpegs()
    with torch.inference_mode():
        for m in ens.members:
            m.head.bias.normal_()
        x = to_tensor(decode_batch(jpegs, InputSpec(160, 90)), InputSpec(160, 90))
        first = torch.sigmoid(ens.members[0].logit_map(x).amax(dim=(1, 2))).numpy()
    gate = float(np.sort(first)[1:3].mean())  # between the 2nd and 3rd lowest: three frames open it
    full = count_flops(ens, (3, 90, 160))
    spec = {"arch": "prefilter_ensemble", "arch_kwargs": {"members": 3, "channels": [6, 12, 16, 24, 32], "gate": gate},
            "input": InputSpec(160, 90).to_dict(), "class_names": ["cup"], "threshold": 0.99}
    loaded = registry.load("prefilter", registry.register("prefilter", ens, spec))
    assert loaded.module.gate == gate
    assert loaded.spec["flops_per_frame"] == full  # the spec's FLOPs are the worst case
    scores, _, flops = locate(loaded, jpegs)
    opened = first >= gate
    assert opened.sum() == 3
    np.testing.assert_allclose(flops, np.where(opened, full, full / 3))
    assert (scores[~opened] < gate).all()


def test_reading_specs_does_not_import_torch(tmp_path):
    """Job drivers and DAG tasks read specs and aliases only: importing torch there costs ~4 s a job."""
    import subprocess
    import sys

    code = ("import sys; from models.registry import ModelRegistry; from percolate.io.store import LocalStore;"
            f"ModelRegistry(LocalStore({str(tmp_path)!r})).aliases(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
