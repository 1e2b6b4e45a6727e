"""Spark job: classify only the frames that passed the prefilter with the heavy model."""

from __future__ import annotations

import sys

from pyspark.sql import DataFrame, functions as F, types as T

from jobs.common import (Stopwatch, in_stable_batches, model_spec, new_parser, require_same_run, stage_dir,
                         write_metrics)
from jobs.inference import heavy_batches
from percolate.config import Settings
from percolate.metering import job_cpu_seconds
from percolate.spark import get_spark

KEYS = ["call_id", "user_id", "frame_index", "ts_ms", "prefilter_score", "loc_x", "loc_y", "decode_mode"]
PREDICTIONS_SCHEMA = T.StructType([
    T.StructField("call_id", T.StringType(), False),
    T.StructField("user_id", T.StringType(), True),
    T.StructField("frame_index", T.IntegerType(), False),
    T.StructField("ts_ms", T.LongType(), False),
    T.StructField("prefilter_score", T.DoubleType(), False),
    T.StructField("loc_x", T.DoubleType(), False),
    T.StructField("loc_y", T.DoubleType(), False),
    T.StructField("decode_mode", T.StringType(), True),
    T.StructField("label", T.StringType(), False),
    T.StructField("score", T.DoubleType(), False),
    T.StructField("none_score", T.DoubleType(), False),
    T.StructField("reused_from", T.IntegerType(), True),
])


def survivors(frames: DataFrame, scores: DataFrame) -> DataFrame:
    """Frames whose prefilter score passed, with that score and its location attached."""
    passed = scores.where("passed").select("call_id", "frame_index", "prefilter_score", "loc_x", "loc_y")
    return frames.join(F.broadcast(passed), ["call_id", "frame_index"], "inner")


def classify_frames(frames: DataFrame, *, store_uri: str, endpoint_url: str | None, version: str,
                    reuse_tolerance: float = 0.0) -> DataFrame:
    """Heavy model outputs per frame. With `reuse_tolerance` > 0 a frame whose model input
    matches one the model already ran on in the same call reuses that output (`reused_from`);
    `frames` must then hold each call's frames together in frame order (`in_stable_batches`)."""
    return frames.mapInPandas(
        lambda it: heavy_batches(it, store_uri, endpoint_url, version, KEYS, reuse_tolerance), PREDICTIONS_SCHEMA
    )


def mark_detections(predictions: DataFrame, threshold: float) -> DataFrame:
    """A frame is a detection of `label` when its probability clears the heavy threshold."""
    return predictions.withColumn("is_detection", F.col("score") >= F.lit(float(threshold)))


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Classify the prefilter's survivors with the heavy model.")
    parser.add_argument("--model-version", required=True, help="heavy version, e.g. v0001")
    parser.add_argument("--reuse-tolerance", type=float, default=None,
                        help="grey levels under which a repeated input reuses the model's output "
                             "(default: PERCOLATE_HEAVY_REUSE_TOLERANCE or 4; 0 runs the model on every frame)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    tolerance = settings.heavy_reuse_tolerance if args.reuse_tolerance is None else float(args.reuse_tolerance)
    watch = Stopwatch()
    require_same_run(settings, ("sample_frames", "prefilter"), args.date, args.run_id)
    threshold = float(model_spec(settings, "heavy", args.model_version)["threshold"])
    spark = get_spark(f"percolate-heavy-{args.date}", settings)
    frames = spark.read.parquet(f"{stage_dir(settings, 'sample_frames', args.date)}/frames")
    scores = spark.read.parquet(stage_dir(settings, "prefilter", args.date))
    todo = in_stable_batches(survivors(frames, scores), spark.sparkContext.defaultParallelism)
    predictions = mark_detections(
        classify_frames(todo, store_uri=settings.store_uri, endpoint_url=settings.s3_endpoint_url,
                        version=args.model_version, reuse_tolerance=tolerance), threshold)
    out = stage_dir(settings, "heavy", args.date)
    predictions.coalesce(1).write.mode("overwrite").parquet(out)
    counts = spark.read.parquet(out).agg(
        F.count("*").alias("frames"), F.sum(F.col("is_detection").cast("int")).alias("positives"),
        F.count("reused_from").alias("reused")).first()
    runs = int(counts["frames"]) - int(counts["reused"])
    write_metrics(settings, "heavy", args.date, {
        "run_id": args.run_id, "model_version": args.model_version, "threshold": threshold,
        "frames_in": int(counts["frames"]), "positives": int(counts["positives"] or 0),
        "model_runs": runs, "reused": int(counts["reused"]),
        "reuse_tolerance": tolerance,
        "cpu_s": job_cpu_seconds(), "wall_s": watch.seconds, "started_at": watch.started_at,
    })
    print(f"[percolate] heavy {args.model_version}: {counts['positives'] or 0}/{counts['frames']} frames are detections; "
          f"the model ran on {runs}, {counts['reused']} reused an "
          f"unchanged input (tolerance {tolerance:g})", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
