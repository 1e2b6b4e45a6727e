"""Spark job: turn the day's stage outputs into the analysts' warehouse tables
(`percolate.transforms.publishing`).

Write, audit, publish (`percolate.io.warehouse`): the rows of `frame_predictions`,
`user_brand_daily`, `quarantine`, `calls` and `audit_frames` (the night's audit sample,
`percolate.transforms.audit`) go to a fresh location keyed by a new publish id,
where their expectation suites and the drift check read them; then, if this run still holds
the date's lease, one commit makes them visible in every table at once, `pipeline_runs` being
the commit marker. Publishes of the date older than the retention period are removed after.
Each step is logged as `[percolate] publish step: <name>`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from pyspark.sql import DataFrame, functions as F

from jobs.common import Stopwatch, hold_lease, model_spec, new_parser
from percolate.budget import read_plan
from percolate.core.layout import HEAVY, PREFILTER, PUBLISH, SAMPLE_FRAMES, VIDEOS, check_date, run_summary_path
from percolate.core.metering import job_cpu_seconds
from percolate.core.provenance import code_version, provenance_values
from percolate.core.settings import Settings
from percolate.core.tables import WAREHOUSE, spark_schema
from percolate.handover import gathered
from percolate.io.lease import open_leases
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage, require_same_run
from percolate.io.warehouse import Warehouse, new_publish_id, open_warehouse
from percolate.report import format_recall
from percolate.run_status import read_run_status
from percolate.transforms.audit import audit_cells, recall_estimate, sample_audit
from percolate.transforms.publishing import (build_calls, build_frame_predictions, build_quarantine,
                                             build_run_row, build_user_brand_daily, day_figures, with_provenance)


def audit(settings: Settings, warehouse: Warehouse, date: str, run_id: str, frames: DataFrame, daily: DataFrame,
          audit_rows: DataFrame, metrics: dict, class_names: list[str], drift_before: str) -> list[str]:
    """Validate the rows about to be published and check drift against the 7 published days
    before `drift_before`; raise on anything critical. Returns the drift warnings."""
    from expectations import check_drift
    from percolate.handover import check

    check(settings, "frame_predictions", date, run_id, data=frames.toPandas(), class_names=class_names)
    check(settings, "user_brand_daily", date, run_id, data=daily.toPandas(), class_names=class_names)
    check(settings, "audit_frames", date, run_id, data=audit_rows.toPandas(), class_names=class_names)
    detections = {r.label: r.n for r in frames.where("is_detection").groupBy("label").count()
                  .withColumnRenamed("count", "n").collect()}
    today = day_figures(metrics[SAMPLE_FRAMES]["videos"], metrics[SAMPLE_FRAMES]["sampled_frames"],
                        metrics[PREFILTER]["frames_passed"], detections)
    history = [day_figures(d["videos"], d["sampled_frames"], d["prefilter_passed"], d["detections"])
               for d in warehouse.published_days(drift_before, 7)]
    drift = check_drift(today, history)
    for line in drift.info:
        print(f"[percolate] drift: {line}", flush=True)
    if drift.critical:
        raise RuntimeError("drift check failed before publish: " + "; ".join(drift.critical))
    return [f"drift: {w}" for w in drift.warnings]


def prefilter_recall(warehouse: Warehouse, date: str, prefilter_spec: dict, days: int = 7) -> dict:
    """The prefilter's recall estimated from the labelled audit frames of the `days` published
    dates before `date` scored by this prefilter (version and threshold), with labels known
    by the end of `date` (a rerun of the date gives the same figure); and the calibrated bound."""
    import pandas as pd

    sample, labels = warehouse.audit_labels(date, days, prefilter_spec["version"], float(prefilter_spec["threshold"]))
    cells = audit_cells(sample, labels) if len(sample) else pd.DataFrame()
    out = recall_estimate(cells, seed=int(date.replace("-", "")))
    out["bound"] = (prefilter_spec.get("metrics") or {}).get("calib_recall_lower_bound")
    return out


def step(name: str, publish_id: str) -> None:
    print(f"[percolate] publish step: {name} ({publish_id})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Publish the day's predictions into the warehouse tables.")
    parser.add_argument("--drift-before", type=check_date, default=None,
                        help="compare drift with the published days before this date (default: --date)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    hold_lease(settings, args.date, args.run_id)
    watch = Stopwatch()
    stage = open_stage(settings, args.run_id)
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
    publish_id = new_publish_id()
    frames = build_frame_predictions(spark.read.parquet(stage.uri(HEAVY, args.date)), provenance)
    outcomes = spark.read.parquet(stage.uri(SAMPLE_FRAMES, args.date, VIDEOS))

    # write: every table's rows to locations no reader sees yet
    frames = warehouse.write("frame_predictions", frames, args.date, publish_id).cache()
    step("written frame_predictions", publish_id)
    daily = warehouse.write("user_brand_daily", build_user_brand_daily(frames, int(rule["min_frames"]),
                                                                      float(rule["min_score"])),
                            args.date, publish_id).cache()
    warehouse.write("quarantine", build_quarantine(outcomes, args.run_id, provenance["published_at"]),
                    args.date, publish_id)
    warehouse.write("calls", build_calls(outcomes, frames, args.run_id, provenance["published_at"]),
                    args.date, publish_id)
    scores = spark.read.parquet(stage.uri(PREFILTER, args.date))
    audit_rows = warehouse.write("audit_frames", with_provenance(
        sample_audit(scores, frames, args.date, settings.audit_budgets,
                     keep_rate=float(metrics[PREFILTER].get("audit_keep_rate") or 1.0)),
        provenance), args.date, publish_id).cache()
    step("written", publish_id)
    # audit what was written; a failure leaves the date as it was
    drift_warnings = audit(settings, warehouse, args.date, args.run_id, frames, daily, audit_rows, metrics,
                           heavy_spec["class_names"], min(args.drift_before or args.date, args.date))
    step("audited", publish_id)
    counts = daily.agg(F.count("*").alias("rows"), F.sum(F.col("confirmed").cast("int")).alias("confirmed")).first()
    validation = gathered(stage, args.date)
    warnings = validation["warnings"] + drift_warnings
    quarantined = metrics[SAMPLE_FRAMES]["videos"] - metrics[SAMPLE_FRAMES]["videos_ok"]
    if quarantined:
        warnings.append(f"{quarantined} videos quarantined")
    verdict = read_run_status(stage, args.date)  # validate_frames' verdict on the quarantined share
    warnings += verdict.get("warnings", [])
    metrics[PUBLISH] = {"cpu_s": job_cpu_seconds()}
    starts = [dt.datetime.fromisoformat(m["started_at"]) for m in metrics.values() if m.get("started_at")]
    recall = prefilter_recall(warehouse, args.date, prefilter_spec)
    recall["drawn"] = audit_rows.count()
    row = build_run_row(
        metrics=metrics, audit=recall,
        counts={"user_brand_rows": int(counts["rows"]), "user_brand_detections": int(counts["confirmed"] or 0)},
        provenance=provenance, cost_per_core_hour=settings.cost_per_core_hour,
        started_at=min(starts) if starts else None, warnings=warnings, validation=validation,
        publish_id=publish_id, plan=read_plan(stage, args.date), status=verdict.get("status") or "success")
    warehouse.write("pipeline_runs", spark.createDataFrame([row], spark_schema(WAREHOUSE["pipeline_runs"])),
                    args.date, publish_id)
    # publish: one commit, if no other run took the date meanwhile
    open_leases(settings).check(args.date, args.run_id)
    warehouse.commit(args.date, publish_id)
    step("committed", publish_id)
    print(f"[percolate] audit: {row['audit_drawn']} frames drawn for labelling; {format_recall(row)}", flush=True)
    removed = warehouse.remove_expired(args.date, dt.timedelta(hours=settings.publish_retention_hours))
    if removed:
        print(f"[percolate] removed {len(removed)} expired publishes of {args.date}: {', '.join(removed)}",
              flush=True)
    for run in stage.remove_other_runs(args.date):  # superseded: this run's publish is the date's now
        print(f"[percolate] removed stage data of run {run} for {args.date}", flush=True)
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
