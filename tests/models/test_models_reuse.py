"""Reusing the heavy model's output for an unchanged input within a call."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from percolate.inference import heavy_batches
from models.heavy import MobileNetLike
from models.preprocess import InputSpec
from models.registry import ModelRegistry
from models.reuse import InputReuse, block_difference, block_means
from percolate.io.store import LocalStore

KEEP = ["call_id", "user_id", "frame_index", "ts_ms", "prefilter_score", "loc_x", "loc_y", "decode_mode"]


def _image(seed=0, h=128, w=128):
    return np.random.default_rng(seed).integers(40, 200, (h, w, 3)).astype(np.uint8)


def test_block_difference_sees_a_change_in_one_block_that_a_mean_would_dilute():
    a = _image()
    assert block_difference(a, a) == 0.0
    noisy = np.clip(a.astype(int) + np.random.default_rng(1).integers(-2, 3, a.shape), 0, 255).astype(np.uint8)
    assert block_difference(a, noisy) <= 2.0
    patch = a.copy()
    patch[16:32, 32:48] = (200, 30, 30)  # a 16 px object: 1.6% of the pixels, all of one block
    assert np.abs(a.astype(int) - patch.astype(int)).mean() < 4  # the whole-image mean hardly moves
    assert block_difference(a, patch) > 20 * 4.0
    assert block_difference(_image(h=90, w=161), _image(h=90, w=161)) == 0.0  # sizes the grid does not divide
    with pytest.raises(ValueError, match="shape"):
        block_difference(a, a[:64])


def test_the_block_means_bound_never_changes_a_match():
    """The gap of block means is a lower bound of block_difference, so skipping references
    whose bound is over the tolerance finds the same reference as comparing every pixel."""
    rng = np.random.default_rng(3)
    base = [_image(seed=s, h=90, w=161) for s in range(3)]
    images = [np.clip(base[int(rng.integers(3))].astype(int) + rng.integers(-k, k + 1, (90, 161, 3)), 0, 255)
              .astype(np.uint8) for k in rng.integers(0, 9, 120)]
    for a, b in zip(images, images[1:]):
        assert float(np.abs(block_means(a) - block_means(b)).max()) <= block_difference(a, b) + 1e-9
    for tolerance in (2.0, 4.0, 6.0):
        fast, slow = InputReuse(tolerance), InputReuse(tolerance)
        found = {True: [], False: []}
        for i, img in enumerate(images):
            for reuse, bounded in ((fast, True), (slow, False)):
                ref = reuse.match("c", img)
                if ref is None:
                    ref = reuse.remember("c", i, img)
                    if not bounded:
                        ref.blocks = None  # compared pixel by pixel
                found[bounded].append(ref.frame_index)
        assert found[True] == found[False]
        assert len(set(found[True])) < len(images)  # some inputs were reused


def test_reuse_stays_within_a_call_and_within_tolerance():
    reuse = InputReuse(tolerance=4.0)
    a, b = _image(0), _image(1)
    assert reuse.match("c1", a) is None
    ref = reuse.remember("c1", 0, a)
    assert reuse.match("c1", a.copy()) is ref
    assert reuse.match("c1", b) is None
    reuse.remember("c1", 1, b)
    assert reuse.match("c1", a).frame_index == 0  # not only the last input
    assert reuse.match("c2", a) is None  # another call starts from nothing
    assert reuse.match("c1", a) is None  # ... and the first call is forgotten
    off = InputReuse(tolerance=0)
    off.remember("c1", 0, a)
    assert off.match("c1", a) is None


def test_references_are_copies_and_bounded():
    reuse = InputReuse(tolerance=4.0, max_references=2)
    buf = _image(0)
    reuse.remember("c1", 0, buf)
    buf[:] = 0  # the caller reuses its buffer
    assert reuse.match("c1", _image(0)) is not None
    reuse.remember("c1", 1, _image(1))
    reuse.remember("c1", 2, _image(2))
    assert reuse.match("c1", _image(0)) is None  # the oldest of three was dropped


def _jpeg(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def store_with_heavy(tmp_path):
    torch.manual_seed(0)
    registry = ModelRegistry(LocalStore(tmp_path / "store"))
    spec = {"arch": "mobilenet_like", "arch_kwargs": {"num_classes": 2, "width_mult": 0.35},
            "input": InputSpec(96, 96, crop=0.5).to_dict(), "class_names": ["A", "B"], "threshold": 0.9}
    version = registry.register("heavy", MobileNetLike(2, width_mult=0.35).eval(), spec)
    return str(tmp_path / "store"), version


def test_heavy_batches_reuse_outputs_of_unchanged_inputs(store_with_heavy):
    store_uri, version = store_with_heavy
    room = np.random.default_rng(0).integers(40, 200, (360, 640, 3)).astype(np.uint8)
    with_cup = room.copy()
    with_cup[150:200, 300:330] = (30, 60, 220)  # inside the crop around the centre
    elsewhere = room.copy()
    elsewhere[10:60, 10:40] = (30, 60, 220)  # outside the crop: the model's input is unchanged
    calls = [("c1", 0, room), ("c1", 1, room), ("c1", 2, with_cup), ("c1", 3, elsewhere), ("c1", 4, with_cup),
             ("c2", 0, room)]
    batch = pd.DataFrame({"call_id": [c for c, _, _ in calls], "user_id": "u", "frame_index": [i for _, i, _ in calls],
                          "ts_ms": [i * 1000 for _, i, _ in calls], "prefilter_score": 0.9, "loc_x": 0.5,
                          "loc_y": 0.5, "decode_mode": "keyframes", "jpeg": [_jpeg(f) for _, _, f in calls]})
    # chunks of 2 rows: references carry over from one chunk to the next
    out = pd.concat(heavy_batches(iter([batch]), store_uri, None, version, KEEP, reuse_tolerance=4.0, chunk=2))
    assert out["reused_from"].tolist() == [pd.NA, 0, pd.NA, 0, 2, pd.NA]
    plain = pd.concat(heavy_batches(iter([batch]), store_uri, None, version, KEEP, reuse_tolerance=0.0))
    assert plain["reused_from"].isna().all()
    assert np.allclose(out["score"], plain["score"], atol=1e-3)  # reused outputs match running the model
    assert out["label"].tolist() == plain["label"].tolist()
    assert list(out.columns) == KEEP + ["label", "score", "none_score", "reused_from"]
