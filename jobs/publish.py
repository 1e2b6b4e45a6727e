"""Spark job: turn the day's stage outputs into the analysts' warehouse tables.

Writes `frame_predictions`, `user_brand_daily`, `quarantine` and, last, `pipeline_runs`,
each by replacing exactly the partition of the date.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from pyspark.sql import DataFrame, functions as F

from jobs.common import STAGES, Stopwatch, model_spec, new_parser, require_same_run, stage_dir
from percolate.config import Settings
from percolate.metering import job_cpu_seconds
from percolate.provenance import code_version, provenance_values
from percolate.spark import get_spark
from percolate.validation import gathered
from percolate.warehouse import TABLES, ensure_tables, overwrite_partition


def with_provenance(df: DataFrame, provenance: dict) -> DataFrame:
    return df.select("*", *[F.lit(v).alias(k) for k, v in provenance.items()])


def build_frame_predictions(predictions: DataFrame, provenance: dict) -> DataFrame:
    """One row per frame the heavy model saw, with the run's provenance."""
    return with_provenance(predictions, provenance)


def build_user_brand_daily(frame_predictions: DataFrame, min_frames: int, min_score: float) -> DataFrame:
    """One row per user and brand seen that day, under the heavy model's user-day rule.

    A frame supports brand b when the heavy model's best brand is b with score >= `min_score`
    (the rule calibrated with the model). `frames` counts supporting frames; `confirmed` is
    frames >= `min_frames`. Frames without a user id cannot be attributed and are left out.
    """
    hits = frame_predictions.where((F.col("score") >= F.lit(float(min_score))) & F.col("user_id").isNotNull())
    order = F.struct("call_id", "ts_ms")
    agg = hits.groupBy("user_id", F.col("label").alias("brand")).agg(
        F.count("*").cast("int").alias("frames"),
        F.countDistinct("call_id").cast("int").alias("calls"),
        F.max("score").alias("max_score"),
        F.avg("score").alias("mean_score"),
        F.min(order).alias("_first"),
        F.max(order).alias("_last"),
        *[F.first(c).alias(c) for c in ("run_id", "prefilter_version", "heavy_version",
                                         "prefilter_threshold", "heavy_threshold", "aggregation",
                                         "sampler", "published_at", "heavy_reuse_tolerance")],
    )
    return agg.select(
        "user_id", "brand", "frames", "calls", "max_score", "mean_score",
        F.col("_first.call_id").alias("first_seen_call_id"), F.col("_first.ts_ms").alias("first_seen_ts_ms"),
        F.col("_last.call_id").alias("last_seen_call_id"), F.col("_last.ts_ms").alias("last_seen_ts_ms"),
        (F.col("frames") >= F.lit(int(min_frames))).alias("confirmed"),
        "run_id", "prefilter_version", "heavy_version", "prefilter_threshold", "heavy_threshold",
        "aggregation", "sampler", "published_at", "heavy_reuse_tolerance",
    )


def build_quarantine(outcomes: DataFrame, run_id: str, published_at) -> DataFrame:
    return outcomes.where(F.col("status") != "ok").select(
        "call_id", "user_id", "video_key", "reason", "message",
        F.lit(run_id).alias("run_id"), F.lit(published_at).alias("published_at"))


def build_run_row(*, run_id: str, metrics: dict[str, dict], counts: dict, provenance: dict,
                  cost_per_core_hour: float, started_at, finished_at, warnings: list[str],
                  validation: dict | None = None) -> dict:
    """The `pipeline_runs` row: the funnel, CPU per stage, cost, and provenance."""
    cpu = {stage: float(metrics[stage].get("cpu_s") or 0.0) for stage in STAGES}
    total = round(sum(cpu.values()), 3)
    cost = total / 3600.0 * cost_per_core_hour
    video_hours = metrics["sample_frames"]["video_seconds"] / 3600.0
    sample = metrics["sample_frames"]
    return {
        "run_id": run_id, "status": "success", "started_at": started_at, "finished_at": finished_at,
        "videos": sample["videos"], "videos_ok": sample["videos_ok"],
        "videos_quarantined": sample["videos"] - sample["videos_ok"],
        "video_seconds": sample["video_seconds"], "sampled_frames": sample["sampled_frames"],
        "prefilter_passed": metrics["prefilter"]["frames_passed"],
        "heavy_positives": metrics["heavy"]["positives"],
        "heavy_model_runs": metrics["heavy"]["model_runs"],
        "user_brand_rows": counts["user_brand_rows"], "user_brand_detections": counts["user_brand_detections"],
        **{f"cpu_s_{stage}": cpu[stage] for stage in STAGES},
        "cpu_s_total": total, "estimated_cost_usd": round(cost, 6),
        "cost_per_video_hour_usd": round(cost / video_hours, 6) if video_hours else None,
        **{k: provenance[k] for k in ("prefilter_version", "heavy_version", "prefilter_threshold",
                                      "heavy_threshold", "aggregation", "sampler",
                                      "heavy_reuse_tolerance")},
        "decode_modes": json.dumps(sample.get("decode_modes", [])),
        "warnings": json.dumps(warnings),
        "validation": json.dumps((validation or {}).get("suites", {}), sort_keys=True),
        "data_docs": (validation or {}).get("docs_path"),
        "code_version": code_version(),
    }


def drift_history(spark, database: str, date: str, days: int = 7) -> list[dict]:
    """Figures of the published days before `date`, most recent first (for drift checks)."""
    from percolate.warehouse import qualified

    runs = spark.sql(
        f"SELECT dt, videos, sampled_frames, prefilter_passed FROM {qualified(database, 'pipeline_runs')} "
        f"WHERE dt < '{date}' ORDER BY dt DESC LIMIT {int(days)}").collect()
    if not runs:
        return []
    dates = ", ".join(f"'{r.dt}'" for r in runs)
    shares: dict[str, dict[str, int]] = {}
    for r in spark.sql(f"SELECT dt, label, count(*) AS n FROM {qualified(database, 'frame_predictions')} "
                       f"WHERE is_detection AND dt IN ({dates}) GROUP BY dt, label").collect():
        shares.setdefault(r.dt, {})[r.label] = r.n
    return [day_figures(r.videos, r.sampled_frames, r.prefilter_passed, shares.get(r.dt, {})) for r in runs]


def day_figures(videos: int, sampled_frames: int, prefilter_passed: int, detections: dict[str, int]) -> dict:
    total = sum(detections.values())
    return {"videos": videos, "sampled_frames": sampled_frames,
            "prefilter_pass_rate": (prefilter_passed / sampled_frames) if sampled_frames else 0.0,
            "detections": total, "brand_share": {k: v / total for k, v in detections.items()} if total else {}}


def audit(settings: Settings, spark, date: str, run_id: str, frames: DataFrame, daily: DataFrame,
          metrics: dict, class_names: list[str]) -> list[str]:
    """Validate the rows about to be published and check drift; raise on anything critical.

    Returns the drift warnings (validation warnings are recorded with the reports).
    """
    from expectations import check_drift
    from percolate.validation import check

    pixels_free = [c for c in frames.columns if c != "jpeg"]
    check(settings, "frame_predictions", date, run_id, data=frames.select(*pixels_free).toPandas(),
          class_names=class_names)
    check(settings, "user_brand_daily", date, run_id, data=daily.toPandas(), class_names=class_names)
    detections = {r.label: r.n for r in frames.where("is_detection").groupBy("label").count()
                  .withColumnRenamed("count", "n").collect()}
    today = day_figures(metrics["sample_frames"]["videos"], metrics["sample_frames"]["sampled_frames"],
                        metrics["prefilter"]["frames_passed"], detections)
    drift = check_drift(today, drift_history(spark, settings.database, date))
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
    metrics = require_same_run(settings, STAGES[:-1], args.date, args.run_id)
    prefilter_spec = model_spec(settings, "prefilter", metrics["prefilter"]["model_version"])
    heavy_spec = model_spec(settings, "heavy", metrics["heavy"]["model_version"])
    published_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    sampler = dict(metrics["sample_frames"]["sampler"], decode_modes=metrics["sample_frames"]["decode_modes"])
    provenance = provenance_values(run_id=args.run_id, prefilter_spec=prefilter_spec, heavy_spec=heavy_spec,
                                   sampler=sampler, published_at=published_at,
                                   heavy_reuse_tolerance=metrics["heavy"]["reuse_tolerance"])
    rule = heavy_spec.get("aggregation") or {}

    spark = get_spark(f"percolate-publish-{args.date}", settings)
    ensure_tables(spark, settings.database)
    predictions = spark.read.parquet(stage_dir(settings, "heavy", args.date))
    outcomes = spark.read.parquet(f"{stage_dir(settings, 'sample_frames', args.date)}/videos")
    frames = build_frame_predictions(predictions, provenance).cache()
    daily = build_user_brand_daily(frames, int(rule.get("min_frames", 1)), float(rule.get("min_score", 0.0))).cache()

    db = settings.database
    # write, audit, then publish: nothing replaces a partition unless all of it passed
    drift_warnings = audit(settings, spark, args.date, args.run_id, frames, daily, metrics,
                           heavy_spec["class_names"])
    overwrite_partition(spark, frames, db, "frame_predictions", args.date)
    overwrite_partition(spark, daily, db, "user_brand_daily", args.date)
    overwrite_partition(spark, build_quarantine(outcomes, args.run_id, published_at), db, "quarantine", args.date)
    counts = daily.agg(F.count("*").alias("rows"), F.sum(F.col("confirmed").cast("int")).alias("confirmed")).first()
    validation = gathered(settings, args.date)
    warnings = validation["warnings"] + drift_warnings
    if metrics["sample_frames"]["videos_ok"] < metrics["sample_frames"]["videos"]:
        warnings.append(f"{metrics['sample_frames']['videos'] - metrics['sample_frames']['videos_ok']} "
                        f"videos quarantined")
    metrics["publish"] = {"cpu_s": job_cpu_seconds()}
    starts = [dt.datetime.fromisoformat(m["started_at"]) for m in metrics.values() if m.get("started_at")]
    started = min(starts) if starts else None
    row = build_run_row(
        run_id=args.run_id, metrics=metrics,
        counts={"user_brand_rows": int(counts["rows"]), "user_brand_detections": int(counts["confirmed"] or 0)},
        provenance=provenance, cost_per_core_hour=settings.cost_per_core_hour,
        started_at=started, finished_at=published_at, warnings=warnings, validation=validation,
    )
    run_df = spark.createDataFrame([row], TABLES["pipeline_runs"])
    overwrite_partition(spark, run_df, db, "pipeline_runs", args.date)
    summary = settings.reports_dir / f"dt={args.date}" / "summary.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(dict(row, date=args.date), default=str, indent=2))
    print(f"[percolate] published {args.date}: {row['heavy_positives']} detection frames, "
          f"{row['user_brand_detections']} user-brand detections, {row['cpu_s_total']:.1f} CPU s, "
          f"${row['estimated_cost_usd']:.5f} in {watch.seconds:.1f}s", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
