"""Spark job: decode the day's stored videos and keep N frames per second.

Decoding happens inside the executors, one video per task where the day allows, so the
slowest call does not hold a whole partition back. Each video is decoded in a child process
forked for it, with a memory cap and a hard time limit (`percolate.isolation`), so a hung
or runaway decoder costs one video, not the executor. Unusable videos become outcome rows
with a reason code instead of failing the job.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Iterator

from pyspark.sql import DataFrame, SparkSession, functions as F, types as T

from jobs.common import Stopwatch, new_parser, stage_dir, write_metrics
from percolate.config import Settings
from percolate.manifest import read_manifest
from percolate.metering import job_cpu_seconds
from percolate.spark import get_spark
from percolate.storage import open_store

if TYPE_CHECKING:
    from percolate.sampler import DecodeLimits

MANIFEST_SCHEMA = T.StructType([
    T.StructField("call_id", T.StringType(), False),
    T.StructField("user_id", T.StringType(), True),
    T.StructField("video_key", T.StringType(), False),
    T.StructField("size_bytes", T.LongType(), True),
])

# One row per sampled frame, plus one outcome row per video (row_kind = "video").
SAMPLED_SCHEMA = T.StructType([
    T.StructField("row_kind", T.StringType(), False),
    T.StructField("call_id", T.StringType(), False),
    T.StructField("user_id", T.StringType(), True),
    T.StructField("video_key", T.StringType(), False),
    T.StructField("frame_index", T.IntegerType(), True),
    T.StructField("ts_ms", T.LongType(), True),
    T.StructField("width", T.IntegerType(), True),
    T.StructField("height", T.IntegerType(), True),
    T.StructField("jpeg", T.BinaryType(), True),
    T.StructField("jpeg_bytes", T.IntegerType(), True),
    T.StructField("status", T.StringType(), True),
    T.StructField("reason", T.StringType(), True),
    T.StructField("message", T.StringType(), True),
    T.StructField("duration_s", T.DoubleType(), True),
    T.StructField("codec", T.StringType(), True),
    T.StructField("decode_mode", T.StringType(), True),
    T.StructField("decode_errors", T.IntegerType(), True),
    T.StructField("frames", T.IntegerType(), True),
    T.StructField("cpu_s", T.DoubleType(), True),
])

FRAME_COLUMNS = ["call_id", "user_id", "frame_index", "ts_ms", "width", "height", "jpeg", "jpeg_bytes",
                 "decode_mode"]
OUTCOME_COLUMNS = ["call_id", "user_id", "video_key", "status", "reason", "message", "duration_s",
                   "width", "height", "codec", "decode_mode", "decode_errors", "frames", "cpu_s"]


def _decode_partition(batches, store_uri: str, endpoint_url: str | None, fps: float,
                      max_side: int, jpeg_quality: int, limits: "DecodeLimits", isolated: bool) -> Iterator:
    import resource
    import time

    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from percolate.isolation import sample_video_isolated
    from percolate.sampler import VideoRejected, sample_video

    decode = sample_video_isolated if isolated else sample_video

    def cpu_seconds() -> float:  # this worker's and its reaped decode children's
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime
    store = open_store(store_uri, endpoint_url)
    schema = to_arrow_schema(SAMPLED_SCHEMA)
    for batch in batches:
        for video in batch.to_pylist():
            cpu0 = cpu_seconds()
            base = {"call_id": video["call_id"], "user_id": video["user_id"], "video_key": video["video_key"]}
            outcome = dict(base, row_kind="video", status="ok")
            rows = []
            try:
                if not store.exists(video["video_key"]):
                    raise VideoRejected("missing_file", f"no object at {video['video_key']}")
                with store.local_copy(video["video_key"]) as path:
                    info, frames = decode(path, fps=fps, max_side=max_side, jpeg_quality=jpeg_quality,
                                          limits=limits)
                rows = [dict(base, row_kind="frame", frame_index=f.frame_index, ts_ms=f.ts_ms,
                             width=f.width, height=f.height, jpeg=f.jpeg, jpeg_bytes=len(f.jpeg),
                             decode_mode=info.decode_mode)
                        for f in frames]
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
                  max_side: int, jpeg_quality: int, limits: "DecodeLimits | None" = None,
                  isolated: bool = True) -> DataFrame:
    """Manifest rows -> sampled frame rows and one outcome row per video.

    `limits` bound each video's decode (the sampler's defaults when None); `isolated` runs
    each decode in a forked child that is killed at the time limit and capped in memory.
    """
    if limits is None:
        from percolate.sampler import DecodeLimits

        limits = DecodeLimits()
    return manifest.mapInArrow(
        lambda batches: _decode_partition(batches, store_uri, endpoint_url, fps, max_side,
                                          jpeg_quality, limits, isolated),
        SAMPLED_SCHEMA,
    )


def frames_of(sampled: DataFrame) -> DataFrame:
    return sampled.where(F.col("row_kind") == "frame").select(*FRAME_COLUMNS)


def outcomes_of(sampled: DataFrame) -> DataFrame:
    return sampled.where(F.col("row_kind") == "video").select(*OUTCOME_COLUMNS)


def manifest_frame(spark: SparkSession, rows: list[dict], max_partitions: int = 512) -> DataFrame:
    """The manifest as a DataFrame with about one video per partition (decode is the cost)."""
    df = spark.createDataFrame([(r["call_id"], r["user_id"], r["video_key"], r["size_bytes"]) for r in rows],
                               MANIFEST_SCHEMA)
    return df.repartition(max(1, min(len(rows), max_partitions)))


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Sample frames from the day's stored videos.")
    parser.add_argument("--fps", type=float, default=None, help="frames per second to keep")
    parser.add_argument("--output-stage", default="sample_frames",
                        help="stage folder to write (training uses its own)")
    parser.add_argument("--time-limit-s", type=float, default=None,
                        help="wall-clock limit per video (default PERCOLATE_DECODE_TIME_LIMIT_S or 300)")
    parser.add_argument("--memory-limit-mb", type=int, default=None,
                        help="memory one video's decode may add (default PERCOLATE_DECODE_MEMORY_MB or 2048)")
    parser.add_argument("--max-pixels", type=int, default=None, help="largest frame, in pixels")
    parser.add_argument("--max-duration-s", type=float, default=None, help="longest video, in seconds")
    parser.add_argument("--in-process", action="store_true",
                        help="decode in the Spark worker itself: no hard time limit, no memory cap")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    fps = args.fps or settings.sampler.fps
    sampler = replace(settings.sampler, **{k: v for k, v in (
        ("time_limit_s", args.time_limit_s), ("memory_limit_mb", args.memory_limit_mb),
        ("max_pixels", args.max_pixels), ("max_duration_s", args.max_duration_s)) if v is not None})
    if args.in_process:
        sampler = replace(sampler, isolated=False)
    from percolate.sampler import DecodeLimits

    limits = DecodeLimits(**sampler.decode_limits())
    watch = Stopwatch()
    spark = get_spark(f"percolate-sample-frames-{args.date}", settings)
    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    manifest = read_manifest(store, args.date)
    sampled = sample_videos(
        manifest_frame(spark, manifest), store_uri=settings.store_uri,
        endpoint_url=settings.s3_endpoint_url, fps=fps, max_side=sampler.max_side,
        jpeg_quality=sampler.jpeg_quality, limits=limits, isolated=sampler.isolated,
    ).persist()
    out = stage_dir(settings, args.output_stage, args.date)
    frames_of(sampled).coalesce(max(1, min(len(manifest) // 8, 16))).write.mode("overwrite").parquet(f"{out}/frames")
    outcomes = outcomes_of(sampled)
    outcomes.coalesce(1).write.mode("overwrite").parquet(f"{out}/videos")
    stats = outcomes.agg(
        F.count("*").alias("videos"),
        F.sum(F.when(F.col("status") == "ok", 1).otherwise(0)).alias("videos_ok"),
        F.sum("frames").alias("frames"),
        F.sum(F.when(F.col("status") == "ok", F.col("duration_s"))).alias("video_seconds"),
        F.sum("cpu_s").alias("decode_cpu_s"),
        F.collect_set("decode_mode").alias("decode_modes"),
    ).first().asDict()
    sampled.unpersist()
    write_metrics(settings, args.output_stage, args.date, {
        "run_id": args.run_id,
        "videos": int(stats["videos"] or 0),
        "videos_ok": int(stats["videos_ok"] or 0),
        "sampled_frames": int(stats["frames"] or 0),
        "video_seconds": float(stats["video_seconds"] or 0.0),
        "worker_cpu_s": float(stats["decode_cpu_s"] or 0.0),
        "decode_modes": sorted(m for m in stats["decode_modes"] if m),
        "sampler": {"fps": fps, "max_side": sampler.max_side, "jpeg_quality": sampler.jpeg_quality,
                    "limits": {"time_limit_s": sampler.time_limit_s, "memory_limit_mb": sampler.memory_limit_mb,
                               "max_pixels": sampler.max_pixels, "max_duration_s": sampler.max_duration_s,
                               "isolated": sampler.isolated}},
        "cpu_s": job_cpu_seconds(),
        "wall_s": watch.seconds,
        "started_at": watch.started_at,
    })
    print(f"[percolate] sampled {stats['frames'] or 0} frames from {stats['videos_ok'] or 0}/{stats['videos']} videos "
          f"for {args.date} in {watch.seconds:.1f}s", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
