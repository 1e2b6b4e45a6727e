import numpy as np
import torch

from _models_testutil import frame
from models.preprocess import InputSpec, decode_batch, decode_jpeg, resize, to_tensor


def test_input_spec_round_trip():
    spec = InputSpec(128, 72, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert InputSpec.from_dict(spec.to_dict()) == spec


def test_decode_resize_and_normalise_shapes():
    rng = np.random.default_rng(0)
    jpegs = [frame(rng, "red"), frame(rng, None)]
    img = decode_jpeg(jpegs[0])
    assert img.shape == (360, 640, 3) and img.dtype == np.uint8
    spec = InputSpec(128, 72)
    small = resize(img, spec)
    assert small.shape == (72, 128, 3) and small.dtype == np.uint8
    x = to_tensor(decode_batch(jpegs, spec), spec)
    assert x.shape == (2, 3, 72, 128) and x.dtype == torch.float32
    # one frame at a time or in a batch: the same numbers
    assert torch.equal(x[1:], to_tensor(decode_batch(jpegs[1:], spec), spec))


def test_to_tensor_normalises():
    spec = InputSpec(4, 2, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    batch = np.full((1, 2, 4, 3), 255, np.uint8)
    assert torch.allclose(to_tensor(batch, spec), torch.ones(1, 3, 2, 4))


def test_to_tensor_is_the_nchw_broadcast_bit_for_bit():
    """The row-wise normalisation in NHWC gives exactly what (x - mean) / std broadcast over
    NCHW gives (the formula the models were trained and calibrated with), for any size,
    a single frame and a strided view."""
    rng = np.random.default_rng(2)
    spec = InputSpec(160, 90, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    for batch in (rng.integers(0, 256, (5, 90, 160, 3), dtype=np.uint8),
                  rng.integers(0, 256, (2, 37, 61, 3), dtype=np.uint8),
                  rng.integers(0, 256, (95, 170, 3), dtype=np.uint8)[2:92, 5:165]):
        four = batch if batch.ndim == 4 else batch[None]
        expected = (torch.from_numpy(np.ascontiguousarray(four)).permute(0, 3, 1, 2).float() - mean) / std
        for channels_last in (False, True):
            assert torch.equal(to_tensor(batch, spec, channels_last), expected)


def test_crop_follows_the_center_and_stays_inside_the_frame():
    from models.preprocess import crop_square

    img = np.zeros((360, 640, 3), np.uint8)
    img[100:140, 500:540] = 255  # a bright square at x=520, y=120
    crop = crop_square(img, (520 / 640, 120 / 360), 0.5)
    assert crop.shape == (180, 180, 3)
    assert crop[70:110, 70:110].min() == 255  # the square sits in the middle of the crop
    corner = crop_square(img, (1.0, 0.0), 0.5)  # pushed back inside at the top-right corner
    assert corner.shape == (180, 180, 3)
    assert corner[100:140, 40:80].min() == 255  # crop starts at x=460


def test_prefilter_map_peak_points_at_the_object():
    import torch

    from models.prefilter import map_peaks

    maps = torch.full((1, 9, 16), -5.0)
    maps[0, 2, 13] = 3.0
    peak, centers = map_peaks(maps)
    assert float(peak[0]) == 3.0
    assert torch.allclose(centers[0], torch.tensor([13.5 / 16, 2.5 / 9]))


def test_channels_last_is_the_same_numbers_in_another_layout():
    spec = InputSpec(16, 8)
    batch = np.random.default_rng(1).integers(0, 256, (3, 8, 16, 3), dtype=np.uint8)
    nchw, nhwc = to_tensor(batch, spec), to_tensor(batch, spec, channels_last=True)
    assert nchw.is_contiguous() and nhwc.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(nchw, nhwc)


def test_built_in_models_run_channels_last_and_folded_and_torchscript_as_it_is(tmp_path):
    """The shipped models through the Predictor (channels-last, batch norm folded into the
    convolutions of a copy) give what a plain NCHW forward of the same weights gives, and the
    predictor's `module` keeps its batch norms and state dict; a TorchScript model runs as it
    is, handed contiguous NCHW tensors."""
    from models.predictor import Predictor
    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.io.store import open_store

    registry = ModelRegistry(open_store(str(tmp_path)))
    ensure_production(registry)
    rng = np.random.default_rng(2)
    for role in ("prefilter", "heavy"):
        predictor = registry.load(role)
        assert predictor.channels_last
        plain = ModelRegistry.build(*registry.files(role, predictor.version)).eval()  # NCHW weights
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in predictor.net.modules())
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in predictor.module.modules()) > 10
        assert predictor.module.state_dict().keys() == plain.state_dict().keys()
        inputs = rng.integers(0, 256, (5, predictor.input.height, predictor.input.width, 3), dtype=np.uint8)
        with torch.inference_mode():
            out = plain(to_tensor(inputs, predictor.input))
            want = torch.sigmoid(out.reshape(5, -1)[:, -1]) if role == "prefilter" else torch.softmax(out, 1)
        np.testing.assert_allclose(predictor.predict_inputs(inputs), want.numpy(), atol=1e-5)

    class Layout(torch.nn.Module):  # 1.0 where its input is contiguous NCHW
        def forward(self, x):
            return torch.full((x.shape[0], 1), float(x.is_contiguous()))

    script = torch.jit.script(Layout())
    spec = {"arch": "torchscript", "input": InputSpec(16, 8).to_dict(), "output": "probabilities"}
    predictor = Predictor("prefilter", "v9", spec, script)
    assert not predictor.channels_last and predictor.net is script
    assert predictor.predict_inputs(rng.integers(0, 256, (2, 8, 16, 3), dtype=np.uint8)).tolist() == [1.0, 1.0]
