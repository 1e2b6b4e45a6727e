"""Spark job: classify only the frames that passed the prefilter with the heavy model
(`percolate.transforms.scoring`). It reads the survivors the sampling job's prefilter step
wrote with their JPEGs, never the rejected frames' pixels."""

from __future__ import annotations

import sys

from pyspark.sql import functions as F

from jobs.common import Stopwatch, hold_lease, model_spec, new_parser
from percolate.core.layout import HEAVY, PREFILTER, SAMPLE_FRAMES, SURVIVORS
from percolate.core.metering import job_cpu_seconds
from percolate.core.settings import Settings
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage, require_same_run
from percolate.transforms.scoring import classify_frames, in_stable_batches, mark_detections


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Classify the prefilter's survivors with the heavy model.")
    parser.add_argument("--model-version", required=True, help="heavy version, e.g. v0001")
    parser.add_argument("--reuse-tolerance", type=float, default=None,
                        help="grey levels under which a repeated input reuses the model's output "
                             "(default: PERCOLATE_HEAVY_REUSE_TOLERANCE or 4; 0 runs the model on every frame)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    hold_lease(settings, args.date, args.run_id)
    tolerance = settings.heavy_reuse_tolerance if args.reuse_tolerance is None else float(args.reuse_tolerance)
    watch = Stopwatch()
    stage = open_stage(settings, args.run_id)
    require_same_run(stage, (SAMPLE_FRAMES, PREFILTER), args.date, args.run_id)
    threshold = float(model_spec(settings, "heavy", args.model_version)["threshold"])
    spark = get_spark(f"percolate-heavy-{args.date}", settings)
    todo = in_stable_batches(spark.read.parquet(stage.uri(SURVIVORS, args.date)), spark.sparkContext.defaultParallelism)
    predictions = mark_detections(
        classify_frames(todo, registry_uri=settings.registry_uri, endpoint_url=settings.s3_endpoint_url,
                        version=args.model_version, reuse_tolerance=tolerance), threshold).persist()
    # the counts first: they fill the cache in parallel tasks, the one-file write then reads it
    counts = predictions.agg(
        F.count("*").alias("frames"), F.sum(F.col("is_detection").cast("int")).alias("positives"),
        F.count("reused_from").alias("reused")).first()
    predictions.coalesce(1).write.mode("overwrite").parquet(stage.uri(HEAVY, args.date))
    predictions.unpersist()
    runs = int(counts["frames"]) - int(counts["reused"])
    stage.write_metrics(HEAVY, args.date, {
        "run_id": args.run_id, "model_version": args.model_version, "threshold": threshold,
        "frames_in": int(counts["frames"]), "positives": int(counts["positives"] or 0),
        "model_runs": runs, "reused": int(counts["reused"]), "reuse_tolerance": tolerance,
        "cpu_s": job_cpu_seconds(), "wall_s": watch.seconds, "started_at": watch.started_at,
    })
    print(f"[percolate] heavy {args.model_version}: {counts['positives'] or 0}/{counts['frames']} frames are "
          f"detections; the model ran on {runs}, {counts['reused']} reused an unchanged input "
          f"(tolerance {tolerance:g})", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
