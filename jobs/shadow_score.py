"""Spark job: shadow-score a published date with a challenger pair (prefilter + heavy).

The challenger samples the date's videos again as the run that published the date
(`--frames-run`) sampled them (its sampler settings), with its own prefilter in the decoder and
its heavy model on its survivors: the nightly run's path, so the two sides differ by their
models alone. (The nightly run keeps the JPEGs of its own survivors and the audit's share only,
so the frames another prefilter would pass are decoded again.) Its rows become one batch,
"<prefilter>+<heavy>", of the
shadow tables `shadow_frame_predictions` and `shadow_user_brand_daily` (partition dt = the
scored date): columns and provenance as the published tables, run_id = `--run-id`. Rerunning
the pair on the date replaces its batch whole. It writes neither the date's published tables
nor its stage data, so it takes no date lease.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace

from pyspark.sql import DataFrame, functions as F

from jobs.common import Stopwatch, model_spec, new_parser
from percolate.core.layout import HEAVY, SAMPLE_FRAMES
from percolate.core.provenance import code_version, provenance_values
from percolate.core.settings import SamplerSettings, Settings
from percolate.io.manifest import read_manifest
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage
from percolate.io.store import open_store
from percolate.io.warehouse import check_batch, open_warehouse
from percolate.transforms.publishing import build_frame_predictions, build_user_brand_daily
from percolate.transforms.sampling import PrefilterStep, manifest_frame, sample_videos, scored_frames
from percolate.transforms.scoring import (classify_frames, in_stable_batches, mark_detections, mark_passed,
                                          survivor_rows)
from percolate.video.limits import DecodeLimits


def shadow_batch(prefilter_version: str, heavy_version: str) -> str:
    """The shadow tables' batch of a challenger pair: "<prefilter_version>+<heavy_version>"."""
    return check_batch(f"{prefilter_version}+{heavy_version}")


def published_sampler(settings: Settings, recorded: dict) -> SamplerSettings:
    """The sampler settings a published run recorded (its `sampler` provenance); the limits
    of this deployment where the record lacks one."""
    limits = recorded.get("limits") or {}
    known = {k: limits[k] for k in ("time_limit_s", "memory_limit_mb", "max_pixels", "max_duration_s", "isolated",
                                    "max_frames", "max_sampled_mb") if k in limits}
    return replace(settings.sampler, fps=float(recorded["fps"]), max_side=int(recorded["max_side"]),
                   jpeg_quality=int(recorded["jpeg_quality"]), **known)


def challenger_predictions(manifest: DataFrame, *, sampler: SamplerSettings, date: str, parallelism: int,
                           store_uri: str, registry_uri: str, endpoint_url: str | None, prefilter_version: str,
                           prefilter_threshold: float, heavy_version: str, heavy_threshold: float,
                           reuse_tolerance: float) -> DataFrame:
    """The date's manifest -> the heavy model's predictions on the frames the prefilter passes:
    sampled and scored in the decoder as the nightly run does (JPEGs for the survivors only),
    the survivors batched as the nightly heavy job batches them."""
    step = PrefilterStep(registry_uri, endpoint_url, prefilter_version, prefilter_threshold, date, keep_rate=0.0)
    sampled = sample_videos(manifest, store_uri=store_uri, endpoint_url=endpoint_url, fps=sampler.fps,
                            max_side=sampler.max_side, jpeg_quality=sampler.jpeg_quality,
                            limits=DecodeLimits(**sampler.decode_limits()), isolated=sampler.isolated,
                            prefilter=step)
    todo = in_stable_batches(survivor_rows(mark_passed(scored_frames(sampled), prefilter_threshold)), parallelism)
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
    manifest = read_manifest(open_store(settings.store_uri, settings.s3_endpoint_url), args.date)
    predictions = challenger_predictions(
        manifest_frame(spark, manifest), sampler=published_sampler(settings, sampled["sampler"]), date=args.date,
        parallelism=spark.sparkContext.defaultParallelism, store_uri=settings.store_uri,
        registry_uri=settings.registry_uri, endpoint_url=settings.s3_endpoint_url,
        prefilter_version=args.prefilter_model,
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
