"""Stage outputs -> the rows of the warehouse tables, with every row's provenance."""

from __future__ import annotations

import json

from pyspark.sql import DataFrame, functions as F

from percolate.core.layout import STAGES
from percolate.core.tables import PROVENANCE, names


def with_provenance(df: DataFrame, provenance: dict) -> DataFrame:
    return df.select("*", *[F.lit(provenance[k]).alias(k) for k in names(PROVENANCE)])


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
        *[F.first(c).alias(c) for c in names(PROVENANCE)],
    )
    return agg.select(
        "user_id", "brand", "frames", "calls", "max_score", "mean_score",
        F.col("_first.call_id").alias("first_seen_call_id"), F.col("_first.ts_ms").alias("first_seen_ts_ms"),
        F.col("_last.call_id").alias("last_seen_call_id"), F.col("_last.ts_ms").alias("last_seen_ts_ms"),
        (F.col("frames") >= F.lit(int(min_frames))).alias("confirmed"),
        *names(PROVENANCE),
    )


def build_quarantine(outcomes: DataFrame, run_id: str, published_at) -> DataFrame:
    return outcomes.where(F.col("status") != "ok").select(
        "call_id", "user_id", "video_key", "reason", "message",
        F.lit(run_id).alias("run_id"), F.lit(published_at).alias("published_at"))


def build_calls(outcomes: DataFrame, frame_predictions: DataFrame, run_id: str, published_at) -> DataFrame:
    """One row per video of the day (processed or quarantined) with what was spent on it:
    sampled frames, frames passing the prefilter, heavy-model runs, detections, decode CPU."""
    per_call = frame_predictions.groupBy("call_id").agg(
        F.count("*").cast("int").alias("prefilter_passed"),
        F.sum(F.col("reused_from").isNull().cast("int")).cast("int").alias("heavy_model_runs"),
        F.sum(F.col("is_detection").cast("int")).cast("int").alias("detection_frames"))
    ok = F.col("status") == "ok"
    return outcomes.join(per_call, "call_id", "left").select(
        "call_id", "user_id", "video_key", "status", "reason", "duration_s", "width", "height", "codec",
        "decode_mode",
        *[F.when(ok, F.coalesce(F.col(src), F.lit(0))).otherwise(0).cast("int").alias(c)
          for src, c in (("frames", "sampled_frames"), ("prefilter_passed", "prefilter_passed"),
                         ("heavy_model_runs", "heavy_model_runs"), ("detection_frames", "detection_frames"))],
        F.col("cpu_s").alias("cpu_s_decode"),
        F.lit(run_id).alias("run_id"), F.lit(published_at).alias("published_at"))


def build_run_row(*, metrics: dict[str, dict], counts: dict, provenance: dict, cost_per_core_hour: float,
                  started_at, warnings: list[str], validation: dict | None = None,
                  publish_id: str | None = None, audit: dict | None = None, plan: dict | None = None,
                  status: str = "success") -> dict:
    """The `pipeline_runs` row: the funnel, CPU per stage, cost, provenance, the audit sample
    and the prefilter's recall estimated from it (`percolate.transforms.audit`), the budget
    step's plan (`percolate.budget`) and the publish whose rows it makes visible
    (`percolate.io.warehouse`). `status` is `success`, or `partial` (`percolate.run_status`)."""
    audit, plan = audit or {}, plan or {}
    cpu = {stage: float(metrics[stage].get("cpu_s") or 0.0) for stage in STAGES}
    total = round(sum(cpu.values()), 3)
    cost = total / 3600.0 * cost_per_core_hour
    sample = metrics["sample_frames"]
    video_hours = sample["video_seconds"] / 3600.0
    return {
        "status": status, "started_at": started_at, "finished_at": provenance["published_at"],
        "videos": sample["videos"], "videos_ok": sample["videos_ok"],
        "videos_quarantined": sample["videos"] - sample["videos_ok"],
        "video_seconds": sample["video_seconds"], "sampled_frames": sample["sampled_frames"],
        "prefilter_passed": metrics["prefilter"]["frames_passed"],
        "heavy_model_runs": metrics["heavy"]["model_runs"],
        "heavy_positives": metrics["heavy"]["positives"],
        "user_brand_rows": counts["user_brand_rows"], "user_brand_detections": counts["user_brand_detections"],
        **{f"cpu_s_{stage}": cpu[stage] for stage in STAGES},
        "cpu_s_total": total, "estimated_cost_usd": round(cost, 6),
        "cost_per_video_hour_usd": round(cost / video_hours, 6) if video_hours else None,
        "decode_modes": json.dumps(sample.get("decode_modes", [])),
        "warnings": json.dumps(warnings),
        "validation": json.dumps((validation or {}).get("suites", {}), sort_keys=True),
        "data_docs": (validation or {}).get("docs_path"),
        "audit_drawn": audit.get("drawn"), "audit_labelled_frames": audit.get("labelled_frames"),
        "audit_days": audit.get("days"), "prefilter_recall_estimate": audit.get("estimate"),
        "prefilter_recall_low": audit.get("low"), "prefilter_recall_high": audit.get("high"),
        "prefilter_recall_bound": audit.get("bound"),
        "cost_estimate_usd": plan.get("estimated_cost_usd"), "budget_usd": plan.get("budget_usd"),
        "on_over_budget": plan.get("on_over_budget"), "sample_fps": json.loads(provenance["sampler"]).get("fps"),
        "expected_recall": plan.get("expected_recall"),
        **provenance,
        "publish_id": publish_id,
    }


def day_figures(videos: int, sampled_frames: int, prefilter_passed: int, detections: dict[str, int]) -> dict:
    """What the drift check compares between days."""
    total = sum(detections.values())
    return {"videos": videos, "sampled_frames": sampled_frames,
            "prefilter_pass_rate": (prefilter_passed / sampled_frames) if sampled_frames else 0.0,
            "detections": total, "brand_share": {k: v / total for k, v in detections.items()} if total else {}}
