"""The sampling transform sums the decoders' CPU split (decode, convert, encode) for the job's metrics."""

from __future__ import annotations

import pytest

from media import make_video
from percolate.core.layout import video_key
from percolate.io.store import LocalStore
from percolate.transforms.sampling import CPU_STEPS, cpu_steps_accumulator, manifest_frame, outcomes_of, sample_videos
from percolate.video.limits import DecodeLimits

pytestmark = pytest.mark.spark


def test_cpu_steps_are_summed_over_the_videos(spark, tmp_path):
    store = LocalStore(tmp_path / "store")
    rows = []
    for call_id, gop in (("short_gop", 30), ("long_gop", 90)):
        key = video_key("2026-01-01", call_id)
        store.put_file(key, make_video(tmp_path / f"{call_id}.mp4", n=90, gop=gop))
        rows.append({"call_id": call_id, "user_id": "u", "video_key": key, "size_bytes": 1})
    steps = cpu_steps_accumulator(spark)
    sampled = sample_videos(manifest_frame(spark, rows), store_uri=store.uri, endpoint_url=None, fps=1.0,
                            max_side=160, jpeg_quality=90, limits=DecodeLimits(), cpu_steps=steps)
    outcomes = outcomes_of(sampled).collect()
    assert {o.status for o in outcomes} == {"ok"}
    split = dict(zip(CPU_STEPS, steps.value))
    assert all(v > 0 for v in split.values()), split
    assert sum(split.values()) <= sum(o.cpu_s for o in outcomes) + 1e-3  # a part of each video's CPU
