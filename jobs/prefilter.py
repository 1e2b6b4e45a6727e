"""Spark job: score every sampled frame with the cheap high-recall prefilter."""

from __future__ import annotations

import sys

from pyspark.sql import DataFrame, functions as F, types as T

from jobs.common import (Stopwatch, in_stable_batches, model_spec, new_parser, require_same_run, stage_dir,
                         write_metrics)
from jobs.inference import prefilter_batches
from percolate.config import Settings
from percolate.metering import job_cpu_seconds
from percolate.spark import get_spark

KEYS = ["call_id", "user_id", "frame_index", "ts_ms"]
SCORES_SCHEMA = T.StructType([
    T.StructField("call_id", T.StringType(), False),
    T.StructField("user_id", T.StringType(), True),
    T.StructField("frame_index", T.IntegerType(), False),
    T.StructField("ts_ms", T.LongType(), False),
    T.StructField("prefilter_score", T.DoubleType(), False),
    T.StructField("loc_x", T.DoubleType(), False),
    T.StructField("loc_y", T.DoubleType(), False),
    T.StructField("prefilter_flops", T.LongType(), True),
])


def score_frames(frames: DataFrame, *, store_uri: str, endpoint_url: str | None, version: str) -> DataFrame:
    """Frames (with jpeg) -> one score row per frame with where it peaks, pixels dropped."""
    return frames.mapInPandas(
        lambda it: prefilter_batches(it, store_uri, endpoint_url, version, KEYS), SCORES_SCHEMA
    )


def mark_passed(scores: DataFrame, threshold: float) -> DataFrame:
    """Flag the frames that go on to the heavy model."""
    return scores.withColumn("passed", F.col("prefilter_score") >= F.lit(float(threshold)))


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Score sampled frames with the prefilter model.")
    parser.add_argument("--model-version", required=True, help="prefilter version, e.g. v0001")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    watch = Stopwatch()
    require_same_run(settings, ("sample_frames",), args.date, args.run_id)
    threshold = float(model_spec(settings, "prefilter", args.model_version)["threshold"])
    spark = get_spark(f"percolate-prefilter-{args.date}", settings)
    frames = spark.read.parquet(f"{stage_dir(settings, 'sample_frames', args.date)}/frames")
    frames = in_stable_batches(frames, spark.sparkContext.defaultParallelism * 2)
    scored = mark_passed(score_frames(frames, store_uri=settings.store_uri,
                                      endpoint_url=settings.s3_endpoint_url, version=args.model_version),
                         threshold)
    out = stage_dir(settings, "prefilter", args.date)
    scored.coalesce(1).write.mode("overwrite").parquet(out)
    counts = spark.read.parquet(out).agg(
        F.count("*").alias("frames"), F.sum(F.col("passed").cast("int")).alias("passed"),
        F.avg("prefilter_flops").alias("flops")).first()
    write_metrics(settings, "prefilter", args.date, {
        "run_id": args.run_id, "model_version": args.model_version, "threshold": threshold,
        "frames_in": int(counts["frames"]), "frames_passed": int(counts["passed"] or 0),
        "flops_per_frame": None if counts["flops"] is None else round(float(counts["flops"])),
        "cpu_s": job_cpu_seconds(), "wall_s": watch.seconds, "started_at": watch.started_at,
    })
    print(f"[percolate] prefilter {args.model_version}: {counts['passed'] or 0}/{counts['frames']} frames passed "
          f"(threshold {threshold:.4f})", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
