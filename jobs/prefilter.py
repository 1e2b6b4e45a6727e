"""Spark job: score every sampled frame with the cheap high-recall prefilter
(`percolate.transforms.scoring`); write the scores, and the survivors with their JPEGs for
the heavy job."""

from __future__ import annotations

import sys

from pyspark.sql import functions as F

from jobs.common import Stopwatch, hold_lease, model_spec, new_parser
from percolate.core.layout import FRAMES, PREFILTER, SAMPLE_FRAMES, SURVIVORS
from percolate.core.metering import job_cpu_seconds
from percolate.core.settings import Settings
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage, require_same_run
from percolate.transforms.scoring import mark_passed, score_frames, score_rows, survivor_rows


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Score sampled frames with the prefilter model.")
    parser.add_argument("--model-version", required=True, help="prefilter version, e.g. v0001")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    hold_lease(settings, args.date, args.run_id)
    watch = Stopwatch()
    stage = open_stage(settings, args.run_id)
    require_same_run(stage, (SAMPLE_FRAMES,), args.date, args.run_id)
    threshold = float(model_spec(settings, "prefilter", args.model_version)["threshold"])
    spark = get_spark(f"percolate-prefilter-{args.date}", settings)
    # the frames in their stored order, unshuffled (docs/tuning.md); scored once, kept for both outputs
    frames = spark.read.parquet(stage.uri(SAMPLE_FRAMES, args.date, FRAMES))
    scored = mark_passed(score_frames(frames, registry_uri=settings.registry_uri, endpoint_url=settings.s3_endpoint_url,
                                      version=args.model_version, survivors_at=threshold), threshold).persist()
    # the counts first: they fill the cache in parallel tasks, the one-file writes then read it
    counts = scored.agg(
        F.count("*").alias("frames"), F.sum(F.col("passed").cast("int")).alias("passed"),
        F.avg("prefilter_flops").alias("flops")).first()
    score_rows(scored).coalesce(1).write.mode("overwrite").parquet(stage.uri(PREFILTER, args.date))
    survivor_rows(scored).coalesce(1).write.mode("overwrite").parquet(stage.uri(SURVIVORS, args.date))
    scored.unpersist()
    stage.write_metrics(PREFILTER, args.date, {
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
