import numpy as np
import torch

from _models_testutil import frame
from models.preprocess import InputSpec, decode_batch, decode_jpeg, prepare, resize, to_tensor


def test_input_spec_round_trip():
    spec = InputSpec(128, 72, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert InputSpec.from_dict(spec.to_dict()) == spec


def test_decode_resize_prepare_shapes():
    rng = np.random.default_rng(0)
    jpegs = [frame(rng, "red"), frame(rng, None)]
    img = decode_jpeg(jpegs[0])
    assert img.shape == (360, 640, 3) and img.dtype == np.uint8
    spec = InputSpec(128, 72)
    small = resize(img, spec)
    assert small.shape == (72, 128, 3) and small.dtype == np.uint8
    x = prepare(jpegs, spec)
    assert x.shape == (2, 3, 72, 128) and x.dtype == torch.float32
    # the training path (decode_batch + to_tensor) is the inference path
    assert torch.equal(x, to_tensor(decode_batch(jpegs, spec), spec))


def test_to_tensor_normalises():
    spec = InputSpec(4, 2, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    batch = np.full((1, 2, 4, 3), 255, np.uint8)
    assert torch.allclose(to_tensor(batch, spec), torch.ones(1, 3, 2, 4))
