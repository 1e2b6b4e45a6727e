"""Manifest rows -> sampled frames and one outcome row per video.

Decoding happens inside the executors, one video per task where the day allows, so the
slowest call does not hold a whole partition back. Each video is decoded in a child
process forked for it, with a memory cap and a hard time limit
(`percolate.video.isolation`), so a hung or runaway decoder costs one video, not the
executor. An unusable video becomes an outcome row with a reason code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, SparkSession, functions as F

from percolate.core.tables import MANIFEST, SAMPLED_FRAMES, SAMPLED_ROWS, VIDEO_OUTCOMES, names, spark_schema

if TYPE_CHECKING:
    from percolate.video.limits import DecodeLimits


CPU_STEPS = ("decode", "convert", "encode")  # the decoders' CPU split (percolate.video.limits.VideoInfo)


class _CpuSteps(AccumulatorParam):
    """Per-step decode CPU seconds summed over the day's videos, in the order of CPU_STEPS."""

    def zero(self, value):
        return [0.0] * len(CPU_STEPS)

    def addInPlace(self, a, b):
        return [x + y for x, y in zip(a, b)]


def cpu_steps_accumulator(spark: SparkSession):
    """An accumulator for `sample_videos(cpu_steps=...)`; read `.value` after the first action."""
    return spark.sparkContext.accumulator([0.0] * len(CPU_STEPS), _CpuSteps())


def _decode_partition(batches, store_uri: str, endpoint_url: str | None, fps: float,
                      max_side: int, jpeg_quality: int, limits: "DecodeLimits", isolated: bool,
                      cpu_steps=None) -> Iterator:
    import resource
    import time

    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from percolate.io.store import open_store
    from percolate.video.decode import sample_video
    from percolate.video.isolation import sample_video_isolated
    from percolate.video.limits import VideoRejected

    decode = sample_video_isolated if isolated else sample_video

    def cpu_seconds() -> float:  # this worker's and its reaped decode children's
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    store = open_store(store_uri, endpoint_url)
    schema = to_arrow_schema(spark_schema(SAMPLED_ROWS))
    for batch in batches:
        for video in batch.to_pylist():
            cpu0 = cpu_seconds()
            base = {"call_id": video["call_id"], "user_id": video["user_id"], "video_key": video["video_key"]}
            outcome = dict(base, row_kind="video", status="ok")
            rows = []
            try:
                if not (video["user_id"] or "").strip():
                    raise VideoRejected("missing_user", "the manifest names no user for this call")
                if not store.exists(video["video_key"]):
                    raise VideoRejected("missing_file", f"no object at {video['video_key']}")
                with store.local_copy(video["video_key"]) as path:
                    info, frames = decode(path, fps=fps, max_side=max_side, jpeg_quality=jpeg_quality,
                                          limits=limits)
                rows = [dict(base, row_kind="frame", frame_index=f.frame_index, ts_ms=f.ts_ms,
                             width=f.width, height=f.height, jpeg=f.jpeg, jpeg_bytes=len(f.jpeg),
                             decode_mode=info.decode_mode)
                        for f in frames]
                if cpu_steps is not None:
                    cpu_steps.add([info.decode_cpu_s, info.convert_cpu_s, info.encode_cpu_s])
                outcome.update(duration_s=info.duration_s, width=info.width, height=info.height,
                               codec=info.codec, decode_mode=info.decode_mode,
                               decode_errors=info.errors, frames=len(frames))
                if not frames:
                    outcome.update(status="quarantined", reason="corrupt_stream",
                                   message="no frame could be decoded")
            except VideoRejected as exc:
                outcome.update(status="quarantined", reason=exc.reason, message=str(exc.message)[:1000])
            except Exception as exc:  # noqa: BLE001 - one bad file never takes the run down
                outcome.update(status="quarantined", reason="decode_error",
                               message=f"{type(exc).__name__}: {exc}"[:1000])
            outcome["cpu_s"] = round(cpu_seconds() - cpu0, 4)
            if outcome["status"] != "ok":
                rows = []  # a quarantined video contributes no frames
            yield pa.RecordBatch.from_pylist(rows + [outcome], schema=schema)


def sample_videos(manifest: DataFrame, *, store_uri: str, endpoint_url: str | None, fps: float,
                  max_side: int, jpeg_quality: int, limits: "DecodeLimits", isolated: bool = True,
                  cpu_steps=None) -> DataFrame:
    """Manifest rows -> sampled frame rows and one outcome row per video (`row_kind`).

    `limits` bound each video's decode; `isolated` runs each decode in a forked child
    that is killed at the time limit and capped in memory. `cpu_steps`
    (`cpu_steps_accumulator`) sums the decoders' CPU by step: compute the result once
    (persist it), or the sums count every recomputation.
    """
    return manifest.mapInArrow(
        lambda batches: _decode_partition(batches, store_uri, endpoint_url, fps, max_side,
                                          jpeg_quality, limits, isolated, cpu_steps),
        spark_schema(SAMPLED_ROWS),
    )


def frames_of(sampled: DataFrame) -> DataFrame:
    return sampled.where(F.col("row_kind") == "frame").select(*names(SAMPLED_FRAMES))


def outcomes_of(sampled: DataFrame) -> DataFrame:
    return sampled.where(F.col("row_kind") == "video").select(*names(VIDEO_OUTCOMES))


def manifest_frame(spark: SparkSession, rows: list[dict], max_partitions: int = 512) -> DataFrame:
    """The manifest as a DataFrame with about one video per partition (decode is the cost)."""
    df = spark.createDataFrame([tuple(r[c] for c in names(MANIFEST)) for r in rows], spark_schema(MANIFEST))
    return df.repartition(max(1, min(len(rows), max_partitions)))


def sampling_figures(outcomes: DataFrame) -> dict:
    """The day's counts: videos, sampled, frames, video seconds, decode CPU, decode modes."""
    stats = outcomes.agg(
        F.count("*").alias("videos"),
        F.sum(F.when(F.col("status") == "ok", 1).otherwise(0)).alias("videos_ok"),
        F.sum("frames").alias("frames"),
        F.sum(F.when(F.col("status") == "ok", F.col("duration_s"))).alias("video_seconds"),
        F.sum("cpu_s").alias("decode_cpu_s"),
        F.collect_set("decode_mode").alias("decode_modes"),
    ).first().asDict()
    return {"videos": int(stats["videos"] or 0), "videos_ok": int(stats["videos_ok"] or 0),
            "sampled_frames": int(stats["frames"] or 0), "video_seconds": float(stats["video_seconds"] or 0.0),
            "worker_cpu_s": float(stats["decode_cpu_s"] or 0.0),
            "decode_modes": sorted(m for m in stats["decode_modes"] if m)}
