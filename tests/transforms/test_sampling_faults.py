"""Faults are not bad videos: what the sampling transform does when the object store fails,
when a video yields more frames than the cap, and that every manifest row gets one outcome."""

from __future__ import annotations

import pytest

from faults import FlakyProxy
from media import make_video
from percolate.core.layout import video_key
from percolate.io.store import S3Store
from percolate.transforms.sampling import frames_of, manifest_frame, outcomes_of, sample_videos
from percolate.video.limits import DecodeLimits

pytestmark = [pytest.mark.spark, pytest.mark.integration]
DATE = "2026-01-02"
BUCKET = "faults"


@pytest.fixture
def s3_day(s3_endpoint, spark, tmp_path, monkeypatch):
    """Three good calls and a text file in a bucket of the loopback S3 server; the Spark
    workers get the server's test credentials."""
    store = S3Store(f"s3://{BUCKET}/calls", s3_endpoint)
    store.client.create_bucket(Bucket=BUCKET)
    rows = []
    for i in range(3):
        path = make_video(tmp_path / f"c{i}.mp4", n=60 + 30 * i, w=160, h=90, gop=30)
        store.put_file(video_key(DATE, f"c{i}"), path)
        rows.append({"call_id": f"c{i}", "user_id": f"u{i}", "video_key": video_key(DATE, f"c{i}"), "size_bytes": 1})
    (tmp_path / "text.mp4").write_text("not a video\n")
    store.put_file(video_key(DATE, "text"), tmp_path / "text.mp4")
    rows.append({"call_id": "text", "user_id": "u9", "video_key": video_key(DATE, "text"), "size_bytes": 1})
    env = spark.sparkContext.environment
    saved = dict(env)
    env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                "PERCOLATE_S3_MAX_ATTEMPTS": "10"})
    try:
        yield s3_endpoint, rows
    finally:
        env.clear()
        env.update(saved)


def _sample(spark, rows, endpoint, limits=DecodeLimits()):
    return sample_videos(manifest_frame(spark, rows), store_uri=f"s3://{BUCKET}/calls", endpoint_url=endpoint,
                         fps=1.0, max_side=160, jpeg_quality=80, limits=limits)


def test_a_flaky_object_store_is_retried_and_quarantines_nothing(spark, s3_day):
    endpoint, rows = s3_day
    proxy = FlakyProxy(endpoint, share=0.3, seed=3)
    with proxy as flaky:
        outcomes = {o.call_id: o for o in outcomes_of(_sample(spark, rows, flaky)).collect()}
    assert proxy.failed >= 2, (proxy.failed, proxy.passed)  # the faults were real
    assert set(outcomes) == {"c0", "c1", "c2", "text"}  # every manifest row, once
    assert {c: o.status for c, o in outcomes.items() if c != "text"} == {"c0": "ok", "c1": "ok", "c2": "ok"}
    assert [o.frames for c, o in sorted(outcomes.items()) if c != "text"] == [2, 3, 4]
    assert outcomes["text"].reason == "not_a_video"


def test_an_object_store_that_keeps_failing_fails_the_job_and_quarantines_nobody(spark, s3_day):
    endpoint, rows = s3_day
    proxy = FlakyProxy(endpoint, share=1.0)
    with proxy as down:
        with pytest.raises(Exception) as ei:
            outcomes_of(_sample(spark, rows, down)).collect()
    assert proxy.failed > 0 and proxy.passed == 0
    assert "503" in str(ei.value) or "ServiceUnavailable" in str(ei.value), str(ei.value)[-2000:]


def test_a_video_over_the_frame_cap_is_quarantined_and_the_rest_sampled(spark, tmp_path):
    from percolate.io.store import LocalStore

    store = LocalStore(tmp_path / "store")
    rows = []
    for call_id, n in (("long", 300), ("short", 60)):  # 10 s and 2 s
        store.put_file(video_key(DATE, call_id), make_video(tmp_path / f"{call_id}.mp4", n=n, w=160, h=90, gop=30))
        rows.append({"call_id": call_id, "user_id": "u", "video_key": video_key(DATE, call_id), "size_bytes": 1})
    for isolated in (True, False):
        sampled = sample_videos(manifest_frame(spark, rows), store_uri=store.uri, endpoint_url=None, fps=1.0,
                                max_side=160, jpeg_quality=80, limits=DecodeLimits(max_frames=5),
                                isolated=isolated).cache()
        outcomes = {o.call_id: o for o in outcomes_of(sampled).collect()}
        assert (outcomes["long"].status, outcomes["long"].reason) == ("quarantined", "too_many_frames"), isolated
        assert (outcomes["short"].status, outcomes["short"].frames) == ("ok", 2)
        assert {f.call_id for f in frames_of(sampled).collect()} == {"short"}
        sampled.unpersist()


def test_frames_stream_in_bounded_batches(monkeypatch):
    """A video's frames spill to a local file past the spool's memory and come back in
    order, in batches of bounded rows."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from percolate.core.tables import SAMPLED_ROWS, spark_schema
    from percolate.transforms import sampling

    monkeypatch.setattr(sampling, "BATCH_ROWS", 7)
    schema = to_arrow_schema(spark_schema(SAMPLED_ROWS))
    spool = sampling._FrameSpool(schema, memory_bytes=10_000)
    for i in range(100):
        spool.add({"call_id": "c", "user_id": "u", "video_key": "k", "row_kind": "frame", "frame_index": i,
                   "ts_ms": i * 1000, "width": 8, "height": 8, "jpeg": bytes([i % 256]) * 1000, "jpeg_bytes": 1000})
    assert spool.spilled > 0 and spool._file is not None
    batches = list(spool.batches())
    spool.close()
    assert all(isinstance(b, pa.RecordBatch) and b.num_rows <= 7 for b in batches)
    indexes = [i for b in batches for i in b.column("frame_index").to_pylist()]
    assert indexes == list(range(100))
