"""A small generated day end to end: videos, manifest, truth."""

from __future__ import annotations

import csv
import io

import av
import pytest

from percolate.core.layout import manifest_key, truth_key
from percolate.io.store import LocalStore
from synth import generate_day, load_truth, plan_day

pytestmark = pytest.mark.slow

DATE = "2026-02-14"


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    store = LocalStore(tmp_path_factory.mktemp("synth-store"))
    summary = generate_day(store, DATE, calls=4, seed=21, min_seconds=2, max_seconds=4, workers=2)
    return store, summary


def test_summary_and_truth(day):
    store, summary = day
    assert summary["date"] == DATE and summary["calls"] == 4 and summary["cup_calls"] == 1
    for k in ("users", "video_seconds", "elapsed_s"):
        assert k in summary
    truth = load_truth(store, DATE)
    assert truth == plan_day(DATE, 4, 21, "all", 2, 4)
    assert store.exists(truth_key(DATE))


def test_manifest_columns_and_sizes(day):
    store, _ = day
    text = store.get_bytes(manifest_key(DATE)).decode()
    assert text.splitlines()[0] == "call_id,user_id,video_key,size_bytes"
    rows = list(csv.DictReader(io.StringIO(text)))
    truth = load_truth(store, DATE)
    assert [r["call_id"] for r in rows] == [c["call_id"] for c in truth["calls"]]
    for r, c in zip(rows, truth["calls"]):
        assert r["user_id"] == c["user_id"] and r["video_key"] == c["video_key"]
        assert int(r["size_bytes"]) == len(store.get_bytes(r["video_key"])) > 0


def test_videos_decode_with_one_keyframe_per_second(day):
    store, _ = day
    for call in load_truth(store, DATE)["calls"]:
        with store.local_copy(call["video_key"]) as path, av.open(path) as container:
            stream = container.streams.video[0]
            assert stream.average_rate == 30
            assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
            assert stream.codec_context.pix_fmt == "yuv420p"
            packets = [p for p in container.demux(stream) if p.size]
            assert len(packets) == round(call["duration_s"] * 30)
            keyframes = [i for i, p in enumerate(sorted(packets, key=lambda p: p.pts)) if p.is_keyframe]
            assert keyframes == list(range(0, len(packets), 30))
            times = sorted(float(p.pts * p.time_base) for p in packets)
            assert times[:2] == [0.0, pytest.approx(1 / 30)]
