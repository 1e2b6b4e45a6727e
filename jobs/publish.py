"""Spark job: turn the day's stage outputs into the analysts' warehouse tables
(`percolate.transforms.publishing`).

Writes `frame_predictions`, `user_brand_daily`, `quarantine` and, last, `pipeline_runs`,
each by replacing exactly the partition of the date, after the rows passed their
expectation suites and the drift check (write, audit, publish).
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from pyspark.sql import DataFrame, functions as F

from jobs.common import Stopwatch, model_spec, new_parser
from percolate.core.layout import HEAVY, PREFILTER, PUBLISH, SAMPLE_FRAMES, VIDEOS, run_summary_path
from percolate.core.metering import job_cpu_seconds
from percolate.core.provenance import code_version, provenance_values
from percolate.core.settings import Settings
from percolate.core.tables import WAREHOUSE, spark_schema
from percolate.handover import gathered
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage, require_same_run
from percolate.io.warehouse import Warehouse, open_warehouse
from percolate.transforms.publishing import (build_frame_predictions, build_quarantine, build_run_row,
                                             build_user_brand_daily, day_figures)


def audit(settings: Settings, warehouse: Warehouse, date: str, run_id: str, frames: DataFrame, daily: DataFrame,
          metrics: dict, class_names: list[str]) -> list[str]:
    """Validate the rows about to be published and check drift against the trailing 7 days;
    raise on anything critical. Returns the drift warnings."""
    from expectations import check_drift
    from percolate.handover import check

    check(settings, "frame_predictions", date, run_id, data=frames.toPandas(), class_names=class_names)
    check(settings, "user_brand_daily", date, run_id, data=daily.toPandas(), class_names=class_names)
    detections = {r.label: r.n for r in frames.where("is_detection").groupBy("label").count()
                  .withColumnRenamed("count", "n").collect()}
    today = day_figures(metrics[SAMPLE_FRAMES]["videos"], metrics[SAMPLE_FRAMES]["sampled_frames"],
                        metrics[PREFILTER]["frames_passed"], detections)
    history = [day_figures(d["videos"], d["sampled_frames"], d["prefilter_passed"], d["detections"])
               for d in warehouse.published_days(date, 7)]
    drift = check_drift(today, history)
    for line in drift.info:
        print(f"[percolate] drift: {line}", flush=True)
    if drift.critical:
        raise RuntimeError("drift check failed before publish: " + "; ".join(drift.critical))
    return [f"drift: {w}" for w in drift.warnings]


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Publish the day's predictions into the warehouse tables.")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    watch = Stopwatch()
    stage = open_stage(settings)
    metrics = require_same_run(stage, (SAMPLE_FRAMES, PREFILTER, HEAVY), args.date, args.run_id)
    prefilter_spec = model_spec(settings, "prefilter", metrics[PREFILTER]["model_version"])
    heavy_spec = model_spec(settings, "heavy", metrics[HEAVY]["model_version"])
    provenance = provenance_values(
        run_id=args.run_id, prefilter_spec=prefilter_spec, heavy_spec=heavy_spec,
        sampler=metrics[SAMPLE_FRAMES]["sampler"], heavy_reuse_tolerance=metrics[HEAVY]["reuse_tolerance"],
        code_version=code_version(),
        published_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0))
    rule = heavy_spec["aggregation"]

    spark = get_spark(f"percolate-publish-{args.date}", settings)
    warehouse = open_warehouse(spark, settings)
    warehouse.ensure_tables()
    frames = build_frame_predictions(spark.read.parquet(stage.uri(HEAVY, args.date)), provenance).cache()
    daily = build_user_brand_daily(frames, int(rule["min_frames"]), float(rule["min_score"])).cache()
    outcomes = spark.read.parquet(stage.uri(SAMPLE_FRAMES, args.date, VIDEOS))

    # write, audit, then publish: nothing replaces a partition unless all of it passed
    drift_warnings = audit(settings, warehouse, args.date, args.run_id, frames, daily, metrics,
                           heavy_spec["class_names"])
    warehouse.replace_partition("frame_predictions", frames, args.date)
    warehouse.replace_partition("user_brand_daily", daily, args.date)
    warehouse.replace_partition("quarantine", build_quarantine(outcomes, args.run_id, provenance["published_at"]),
                                args.date)
    counts = daily.agg(F.count("*").alias("rows"), F.sum(F.col("confirmed").cast("int")).alias("confirmed")).first()
    validation = gathered(stage, args.date)
    warnings = validation["warnings"] + drift_warnings
    quarantined = metrics[SAMPLE_FRAMES]["videos"] - metrics[SAMPLE_FRAMES]["videos_ok"]
    if quarantined:
        warnings.append(f"{quarantined} videos quarantined")
    metrics[PUBLISH] = {"cpu_s": job_cpu_seconds()}
    starts = [dt.datetime.fromisoformat(m["started_at"]) for m in metrics.values() if m.get("started_at")]
    row = build_run_row(
        metrics=metrics,
        counts={"user_brand_rows": int(counts["rows"]), "user_brand_detections": int(counts["confirmed"] or 0)},
        provenance=provenance, cost_per_core_hour=settings.cost_per_core_hour,
        started_at=min(starts) if starts else None, warnings=warnings, validation=validation)
    warehouse.replace_partition("pipeline_runs", spark.createDataFrame([row], spark_schema(WAREHOUSE["pipeline_runs"])),
                                args.date)
    summary = run_summary_path(settings.reports_dir, args.date)
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(dict(row, date=args.date), default=str, indent=2))
    print(f"[percolate] published {args.date}: {row['heavy_positives']} detection frames, "
          f"{row['user_brand_detections']} user-brand detections, {row['cpu_s_total']:.1f} CPU s, "
          f"${row['estimated_cost_usd']:.5f} in {watch.seconds:.1f}s", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
