"""The cheapest decode per file ("nonref" on long GOPs), the CPU split, and raw RGB frames."""

from __future__ import annotations

import time

import numpy as np
import pytest

from percolate.video.decode import sample_video
from percolate.video.isolation import sample_video_isolated

from media import decode_jpeg


def _key(frames):
    return [(f.frame_index, f.ts_ms, f.width, f.height, f.jpeg) for f in frames]


def test_auto_skips_non_reference_frames_on_a_long_gop_with_b_frames(media):
    auto, fa = sample_video(media["gop90_b"])
    full, ff = sample_video(media["gop90_b"], mode="all")
    assert (auto.decode_mode, full.decode_mode) == ("nonref", "all")
    assert auto.keyframe_interval_s == pytest.approx(3.0)
    assert _key(fa) == _key(ff)  # the same frames, timestamps and pixels as a full decode
    assert [f.frame_index for f in fa] == [0, 1, 2, 3, 4]
    assert full.frames_decoded == 150 and auto.frames_decoded < 120


def test_nonref_without_non_reference_frames_is_recorded_as_all(media):
    info, frames = sample_video(media["gop90"], mode="nonref")  # no B-frames: nothing to skip
    full, ff = sample_video(media["gop90"], mode="all")
    assert info.decode_mode == "all" and info.frames_decoded == 150
    assert _key(frames) == _key(ff)


def test_nonref_keeps_each_buckets_first_frame_with_variable_frame_rate(media):
    info, frames = sample_video(media["vfr"], mode="nonref")
    _, ff = sample_video(media["vfr"], mode="all")
    assert _key(frames) == _key(ff)


def test_cpu_split_adds_up_and_crosses_the_pipe(media):
    c0 = time.process_time()
    info, _ = sample_video(media["gop90_b"])
    spent = time.process_time() - c0
    parts = (info.decode_cpu_s, info.convert_cpu_s, info.encode_cpu_s)
    assert all(p > 0 for p in parts)
    assert sum(parts) <= spent + 1e-3
    iso, _ = sample_video_isolated(media["gop90_b"])
    assert iso.decode_cpu_s > 0 and iso.convert_cpu_s > 0 and iso.encode_cpu_s > 0


@pytest.mark.parametrize("decode", [sample_video, sample_video_isolated])
def test_rgb_frames_are_the_jpegs_pixels_without_the_jpeg(media, decode):
    info, rgb = decode(media["rot90"], frame_format="rgb")
    _, jpeg = sample_video(media["rot90"])
    assert [(f.frame_index, f.ts_ms, f.width, f.height) for f in rgb] == \
           [(f.frame_index, f.ts_ms, f.width, f.height) for f in jpeg]
    assert info.encode_cpu_s == 0.0
    for r, j in zip(rgb, jpeg):
        assert r.jpeg == b"" and len(r.rgb) == r.width * r.height * 3
        pixels = r.pixels()
        assert pixels.shape == (320, 180, 3) == (r.height, r.width, 3)  # stored 320x180, shown upright
        assert np.abs(pixels.astype(np.int16) - decode_jpeg(j.jpeg)).mean() < 3.0


def test_rgb_is_the_same_in_the_child(media):
    _, here = sample_video(media["gop30"], frame_format="rgb")
    _, there = sample_video_isolated(media["gop30"], frame_format="rgb")
    assert here == there


def test_unknown_frame_format_is_refused(media):
    with pytest.raises(ValueError):
        sample_video(media["gop30"], frame_format="png")
    with pytest.raises(ValueError):
        sample_video_isolated(media["gop30"], frame_format="png")
