"""Spark job: shadow-score a published date with a challenger pair (prefilter + heavy).

The challenger scores the sampled frames of the run that published the date (`--frames-run`),
through the same inference path as the nightly `prefilter` and `heavy` jobs
(`percolate.transforms.scoring`), and its rows become one batch, "<prefilter>+<heavy>", of the
shadow tables `shadow_frame_predictions` and `shadow_user_brand_daily` (partition dt = the
scored date): columns and provenance as the published tables, run_id = `--run-id`. Rerunning
the pair on the date replaces its batch whole. It writes neither the date's published tables
nor its stage data, so it takes no date lease.
"""

from __future__ import annotations

import datetime as dt
import sys

from pyspark.sql import DataFrame, functions as F

from jobs.common import Stopwatch, model_spec, new_parser
from percolate.core.layout import FRAMES, HEAVY, SAMPLE_FRAMES
from percolate.core.provenance import code_version, provenance_values
from percolate.core.settings import Settings
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage
from percolate.io.warehouse import check_batch, open_warehouse
from percolate.transforms.publishing import build_frame_predictions, build_user_brand_daily
from percolate.transforms.scoring import (classify_frames, in_stable_batches, mark_detections, mark_passed,
                                          score_frames, survivors)


def shadow_batch(prefilter_version: str, heavy_version: str) -> str:
    """The shadow tables' batch of a challenger pair: "<prefilter_version>+<heavy_version>"."""
    return check_batch(f"{prefilter_version}+{heavy_version}")


def challenger_predictions(frames: DataFrame, *, parallelism: int, registry_uri: str, endpoint_url: str | None,
                           prefilter_version: str, prefilter_threshold: float, heavy_version: str,
                           heavy_threshold: float, reuse_tolerance: float) -> DataFrame:
    """Sampled frames -> the heavy model's predictions on the frames the prefilter passes, batched
    exactly as the nightly prefilter and heavy jobs batch them (the same scores for the same models)."""
    scores = mark_passed(score_frames(in_stable_batches(frames, parallelism * 2), registry_uri=registry_uri,
                                      endpoint_url=endpoint_url, version=prefilter_version), prefilter_threshold)
    todo = in_stable_batches(survivors(frames, scores), parallelism)
    return mark_detections(classify_frames(todo, registry_uri=registry_uri, endpoint_url=endpoint_url,
                                           version=heavy_version, reuse_tolerance=reuse_tolerance), heavy_threshold)


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Shadow-score a published date's sampled frames with a challenger pair.")
    parser.add_argument("--frames-run", required=True, help="the run that published the date: its sampled frames")
    parser.add_argument("--prefilter-model", required=True, help="challenger prefilter version, e.g. v0003")
    parser.add_argument("--heavy-model", required=True, help="challenger heavy version, e.g. v0003")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    watch = Stopwatch()
    batch = shadow_batch(args.prefilter_model, args.heavy_model)
    stage = open_stage(settings, args.frames_run)
    sampled = stage.read_metrics(SAMPLE_FRAMES, args.date)
    if sampled["run_id"] != args.frames_run:
        raise RuntimeError(f"the sampled frames of {args.date} are not from run {args.frames_run!r}")
    # the published run's reuse tolerance: the two sides differ by their models alone
    tolerance = float(stage.read_metrics(HEAVY, args.date).get("reuse_tolerance", settings.heavy_reuse_tolerance))
    prefilter_spec = model_spec(settings, "prefilter", args.prefilter_model)
    heavy_spec = model_spec(settings, "heavy", args.heavy_model)
    provenance = provenance_values(
        run_id=args.run_id, prefilter_spec=prefilter_spec, heavy_spec=heavy_spec, sampler=sampled["sampler"],
        heavy_reuse_tolerance=tolerance, code_version=code_version(),
        published_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0))
    rule = heavy_spec["aggregation"]

    spark = get_spark(f"percolate-shadow-{args.date}", settings)
    warehouse = open_warehouse(spark, settings)
    warehouse.ensure_tables()
    retention = dt.timedelta(hours=settings.publish_retention_hours)
    predictions = challenger_predictions(
        spark.read.parquet(stage.uri(SAMPLE_FRAMES, args.date, FRAMES)),
        parallelism=spark.sparkContext.defaultParallelism, registry_uri=settings.registry_uri,
        endpoint_url=settings.s3_endpoint_url, prefilter_version=args.prefilter_model,
        prefilter_threshold=float(prefilter_spec["threshold"]), heavy_version=args.heavy_model,
        heavy_threshold=float(heavy_spec["threshold"]), reuse_tolerance=tolerance)
    frames = warehouse.put_batch("shadow_frame_predictions", build_frame_predictions(predictions, provenance),
                                 args.date, batch, retention).cache()
    daily = warehouse.put_batch(
        "shadow_user_brand_daily", build_user_brand_daily(frames, int(rule["min_frames"]), float(rule["min_score"])),
        args.date, batch, retention)
    counts = frames.agg(F.count("*").alias("passed"), F.sum(F.col("is_detection").cast("int")).alias("detections")
                        ).first()
    confirmed = daily.where("confirmed").count()
    print(f"[percolate] shadow {batch} on {args.date} (frames of run {args.frames_run}): {counts['passed']}/"
          f"{sampled['sampled_frames']} frames passed, {counts['detections'] or 0} detections, {confirmed} "
          f"confirmed user-brands in {watch.seconds:.1f}s", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
