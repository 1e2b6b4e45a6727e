"""Every table's columns, defined once: the manifest, the hand-overs between stages and the
warehouse tables.

Types are Spark SQL type names. The Spark jobs build their schemas from here
(`spark_schema`), the warehouse builds its DDL from here, and the expectation suites are
given these column lists, so a column added here reaches all three.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from percolate.core.layout import STAGES

if TYPE_CHECKING:
    from pyspark.sql.types import StructType


class Column(NamedTuple):
    name: str
    type: str  # Spark SQL: string, int, bigint, double, boolean, binary, timestamp
    nullable: bool = True


Columns = tuple[Column, ...]


def _cols(spec: str, nullable: bool = True) -> Columns:
    """'a string, b int' -> columns; a trailing '!' on a type marks the column NOT NULL."""
    out = []
    for part in spec.split(","):
        name, type_ = part.split()
        out.append(Column(name, type_.rstrip("!"), nullable and not type_.endswith("!")))
    return tuple(out)


MANIFEST: Columns = _cols("call_id string!, user_id string, video_key string!, size_bytes bigint")

# -- hand-overs between the Spark jobs (the stage area) ----------------------------------
# One row per sampled frame.
SAMPLED_FRAMES: Columns = _cols(
    "call_id string!, user_id string, frame_index int, ts_ms bigint, width int, height int, jpeg binary, "
    "jpeg_bytes int, decode_mode string")
# One row per video of the manifest: sampled (status ok) or quarantined with a reason code.
VIDEO_OUTCOMES: Columns = _cols(
    "call_id string!, user_id string, video_key string!, status string, reason string, message string, "
    "duration_s double, width int, height int, codec string, decode_mode string, decode_errors int, "
    "frames int, cpu_s double")
# The sampling job's output holds both kinds of rows, told apart by row_kind ("frame", "video").
SAMPLED_ROWS: Columns = (Column("row_kind", "string", False),) + tuple(
    {c.name: c for c in SAMPLED_FRAMES + VIDEO_OUTCOMES}.values())
# The sampling job scores each frame with the prefilter as it samples it (the nightly run): its
# rows then carry these too, null on outcome rows and where no prefilter ran.
SAMPLED_SCORES: Columns = _cols("prefilter_score double, loc_x double, loc_y double, prefilter_flops bigint")
SCORED_ROWS: Columns = SAMPLED_ROWS + SAMPLED_SCORES
FRAME_KEY: Columns = _cols("call_id string!, user_id string, frame_index int!, ts_ms bigint!")
PREFILTER_OUTPUT: Columns = FRAME_KEY + _cols(
    "prefilter_score double!, loc_x double!, loc_y double!, prefilter_flops bigint")
PREFILTER_SCORES: Columns = PREFILTER_OUTPUT + _cols("passed boolean")
HEAVY_INPUT_KEYS: Columns = FRAME_KEY + _cols("prefilter_score double!, loc_x double!, loc_y double!, "
                                              "decode_mode string")
# reused_from: the frame of the same call whose heavy output this row reuses; null: the model ran.
HEAVY_OUTPUT: Columns = HEAVY_INPUT_KEYS + _cols("label string!, score double!, none_score double!, "
                                                 "reused_from int")
HEAVY_PREDICTIONS: Columns = HEAVY_OUTPUT + _cols("is_detection boolean")

# -- the warehouse (database `percolate`, partitioned by dt) -------------------------------
PROVENANCE: Columns = _cols(
    "run_id string, prefilter_version string, heavy_version string, prefilter_threshold double, "
    "heavy_threshold double, aggregation string, sampler string, heavy_reuse_tolerance double, "
    "code_version string, published_at timestamp")

WAREHOUSE: dict[str, Columns] = {
    "frame_predictions": tuple(Column(c.name, c.type) for c in HEAVY_PREDICTIONS) + PROVENANCE,
    "user_brand_daily": _cols(
        "user_id string, brand string, frames int, calls int, max_score double, mean_score double, "
        "first_seen_call_id string, first_seen_ts_ms bigint, last_seen_call_id string, last_seen_ts_ms bigint, "
        "confirmed boolean") + PROVENANCE,
    "quarantine": _cols("call_id string, user_id string, video_key string, reason string, message string, "
                        "run_id string, published_at timestamp"),
    "calls": _cols(
        "call_id string, user_id string, video_key string, status string, reason string, duration_s double, "
        "width int, height int, codec string, decode_mode string, sampled_frames int, prefilter_passed int, "
        "heavy_model_runs int, detection_frames int, cpu_s_decode double, run_id string, published_at timestamp"),
    "pipeline_runs": _cols(
        "run_id string, status string, started_at timestamp, finished_at timestamp, videos int, videos_ok int, "
        "videos_quarantined int, video_seconds double, sampled_frames bigint, prefilter_passed bigint, "
        "heavy_model_runs bigint, heavy_positives bigint, user_brand_rows int, user_brand_detections int, "
        + ", ".join(f"cpu_s_{s} double" for s in STAGES) + ", "
        "cpu_s_total double, estimated_cost_usd double, cost_per_video_hour_usd double, decode_modes string, "
        "warnings string, validation string, data_docs string") + tuple(
        c for c in PROVENANCE if c.name != "run_id") + _cols("publish_id string") + _cols(
        # added later: at the end, so an earlier version's table gets them (Warehouse.ensure_tables)
        "audit_drawn int, audit_labelled_frames int, audit_days int, prefilter_recall_estimate double, "
        "prefilter_recall_low double, prefilter_recall_high double, prefilter_recall_bound double") + _cols(
        # the budget step (percolate.budget): the estimate before sampling, the budget, the policy,
        # the rate the run sampled at and the user-day recall expected there
        "cost_estimate_usd double, budget_usd double, on_over_budget string, sample_fps double, "
        "expected_recall double"),
    # The audit sample (percolate.transforms.audit): frames set aside for people to label, each
    # with the probability it was drawn with and its stratum's size.
    "audit_frames": _cols(
        "call_id string, user_id string, frame_index int, ts_ms bigint, stratum string, prefilter_score double, "
        "passed boolean, label string, score double, sampling_probability double, stratum_frames int") + PROVENANCE,
    # Labels: what people said about a frame or a user-day (the reorder button, the audit sample,
    # imported files), partitioned by the date the label arrived (dt) and its batch (one import,
    # one night's button clicks): a batch is replaced whole, never merged.
    "labels": _cols(
        "label_id string, subject string, call_id string, frame_index int, user_id string, day string, "
        "brand string, verdict string, source string, known_at timestamp"),
    "label_quarantine": _cols("row_number int, raw string, reason string, message string"),
}
LABEL_TABLES: tuple[str, ...] = ("labels", "label_quarantine")  # written in batches, not by the nightly run
# A challenger pair's shadow scoring of a published date (`percolate models shadow`): the columns of
# the published tables, dt = the scored date, batch = "<prefilter_version>+<heavy_version>".
SHADOW_TABLES: tuple[str, ...] = ("shadow_frame_predictions", "shadow_user_brand_daily")
WAREHOUSE.update({name: WAREHOUSE[name.removeprefix("shadow_")] for name in SHADOW_TABLES})
# A weekly retrain's judgement (`percolate retrain`): one row per model pair it evaluated, with the
# decision; dt = the retrain's date, batch = retrain-<date>.
WAREHOUSE["model_evaluations"] = _cols(
    "retrain_date string, role string, prefilter_version string, heavy_version string, evaluation_dates string, "
    "true_user_brands int, predicted_user_brands int, precision double, precision_low double, precision_high double, "
    "recall double, recall_low double, recall_high double, brand_recall string, flops_per_frame double, "
    "prefilter_pass_rate double, heavy_run_rate double, model_cpu_s_per_frame double, promoted boolean, "
    "decision string, gates string, report string, decided_at timestamp")
EVALUATION_TABLES: tuple[str, ...] = ("model_evaluations",)
# Every table partitioned by (dt, batch) and written a batch at a time (`Warehouse.put_batch`).
BATCH_TABLES: tuple[str, ...] = LABEL_TABLES + SHADOW_TABLES + EVALUATION_TABLES
LABEL_SOURCES: tuple[str, ...] = ("reorder_button", "audit", "import")
LABEL_VERDICTS: tuple[str, ...] = ("confirmed", "rejected")
# the audit sample's strata (percolate.transforms.audit)
AUDIT_STRATA: tuple[str, ...] = ("prefilter_rejected", "heavy_low_confidence", "prefilter_passed")
NO_BRAND = "none"  # a frame label's brand when the frame shows none of the classes (the audit's answer)
# How each table's rows are ordered when compared or shown (a key of the table).
WAREHOUSE_KEYS: dict[str, tuple[str, ...]] = {
    "frame_predictions": ("call_id", "frame_index"), "user_brand_daily": ("user_id", "brand"),
    "quarantine": ("call_id",), "calls": ("call_id",), "pipeline_runs": ("run_id",),
    "audit_frames": ("call_id", "frame_index")}
# The tables whose rows a run publishes beside its `pipeline_runs` row (the commit marker).
RUN_TABLES: tuple[str, ...] = ("frame_predictions", "user_brand_daily", "quarantine", "calls", "audit_frames")

TABLE_COMMENTS: dict[str, str] = {
    "frame_predictions": "One row per sampled frame that passed the prefilter, with the heavy model's best label",
    "user_brand_daily": "One row per user and brand seen that day; confirmed = the model's user-day rule held",
    "quarantine": "One row per video that could not be processed, with a reason code",
    "calls": "One row per video of the day: processed or quarantined, and what was spent on it",
    "pipeline_runs": "One row per date: the run that published it (funnel, cost, validation, provenance)",
    "audit_frames": "One row per frame set aside for labelling (the audit sample), with its sampling probability",
    "model_evaluations": "One row per model pair a weekly retrain evaluated (champion, challenger), with its decision",
    "labels": "One row per label a person gave a frame or a user-day (dt: the date it arrived)",
    "label_quarantine": "One row per label row refused at import, with a reason code",
    "shadow_frame_predictions": "A challenger pair's frame_predictions for a published date (batch: the pair), "
                                "scored from the same sampled frames, never shown as the date's answer",
    "shadow_user_brand_daily": "A challenger pair's user_brand_daily for a published date (batch: the pair), "
                               "under the challenger heavy model's user-day rule",
}
# What each warehouse column means (a name means the same in every table), shown by DESCRIBE.
COLUMN_COMMENTS: dict[str, str] = {
    "call_id": "the call (one stored video)", "user_id": "the user whose call it is",
    "video_key": "the video's key in the object store",
    "frame_index": "index of the sampled frame within its call", "ts_ms": "frame timestamp, ms from call start",
    "prefilter_score": "prefilter score (higher: more likely a brand)",
    "loc_x": "prefilter's location estimate, x in [0, 1]", "loc_y": "prefilter's location estimate, y in [0, 1]",
    "decode_mode": "what was decoded: keyframes only, every frame but the non-reference ones not sampled (nonref), or all",
    "label": "heavy model's best class", "score": "heavy model's probability of label",
    "none_score": "heavy model's probability of no brand",
    "reused_from": "frame of the same call whose output was reused (input unchanged); null: the model ran",
    "is_detection": "label is a brand with score >= heavy_threshold",
    "run_id": "the Airflow run (or backfill run) that published the row",
    "prefilter_version": "prefilter model version", "heavy_version": "heavy model version",
    "prefilter_threshold": "prefilter pass threshold", "heavy_threshold": "heavy detection threshold",
    "aggregation": "the user-day rule (JSON)", "sampler": "sampler settings and decode limits (JSON)",
    "heavy_reuse_tolerance": "grey levels under which a frame reuses the previous output",
    "code_version": "Percolate's code version (git commit)", "published_at": "when the row was published (UTC)",
    "brand": "the brand (a heavy-model class)", "frames": "frames supporting the brand that day",
    "calls": "calls with a supporting frame", "max_score": "highest supporting score",
    "mean_score": "mean supporting score", "first_seen_call_id": "call of the first supporting frame",
    "first_seen_ts_ms": "timestamp of the first supporting frame", "last_seen_call_id": "call of the last one",
    "last_seen_ts_ms": "timestamp of the last supporting frame",
    "confirmed": "the user-day rule held: the brand counts as seen by this user that day",
    "reason": "quarantine reason code (docs/pipeline.md); null when processed", "message": "what went wrong",
    "status": "ok: processed; otherwise quarantined (calls) / the run's outcome: success, or partial when far more videos were quarantined than on the trailing days (pipeline_runs)",
    "duration_s": "video duration, seconds", "width": "frame width, pixels", "height": "frame height, pixels",
    "codec": "video codec", "sampled_frames": "frames sampled", "prefilter_passed": "frames passing the prefilter",
    "heavy_model_runs": "frames the heavy model ran on (others reused an output)",
    "detection_frames": "frames with a detection", "cpu_s_decode": "CPU seconds spent decoding the video",
    "started_at": "when the run's first job started (UTC)", "finished_at": "when it published (UTC)",
    "videos": "videos in the day's manifest", "videos_ok": "videos processed",
    "videos_quarantined": "videos quarantined", "video_seconds": "seconds of video processed",
    "heavy_positives": "frames with a detection", "user_brand_rows": "rows in user_brand_daily",
    "user_brand_detections": "confirmed user-brand pairs", "cpu_s_total": "CPU seconds, all stages",
    "estimated_cost_usd": "cpu_s_total at the configured price per core-hour",
    "cost_per_video_hour_usd": "estimated cost per hour of video", "decode_modes": "decode modes used (JSON)",
    "warnings": "validation and drift warnings (JSON)", "validation": "suite -> passed/failed (JSON)",
    "data_docs": "Great Expectations data docs of the run", "publish_id": "the publish that made the rows visible",
    "dt": "the date (YYYY-MM-DD) the calls were stored (labels: the date the label arrived)",
    "label_id": "the label's id (a hash of subject, brand, verdict and source)",
    "subject": "what is labelled: frame:<call_id>:<frame_index> or user_day:<user_id>:<day>",
    "day": "the date of the call(s) the label is about", "verdict": "confirmed or rejected",
    "source": "reorder_button, audit or import", "known_at": "when the label was given (UTC)",
    "batch": "labels: the import or night the label came with; shadow tables: the challenger pair "
             "<prefilter>+<heavy> (a batch is replaced whole when written again)",
    "stratum": "the audit stratum: prefilter_rejected, heavy_low_confidence or prefilter_passed",
    "passed": "the frame passed the prefilter",
    "sampling_probability": "the probability the frame was drawn into the audit sample with",
    "stratum_frames": "frames of the stratum that day (the audit's population)",
    "audit_drawn": "frames drawn into the audit sample",
    "audit_labelled_frames": "labelled audit frames of the trailing 7 days the recall estimate rests on",
    "audit_days": "days of the trailing 7 whose audit frames are labelled",
    "prefilter_recall_estimate": "the prefilter's recall estimated from the labelled audit sample",
    "prefilter_recall_low": "lower end of its 95% interval", "prefilter_recall_high": "upper end of its 95% interval",
    "prefilter_recall_bound": "the recall lower bound the prefilter was calibrated to",
    "cost_estimate_usd": "the run's cost estimated before sampling, at the rate it ran at (USD)",
    "budget_usd": "the run's budget (USD); null: none", "on_over_budget": "refuse or degrade (a lower rate)",
    "sample_fps": "frames sampled per second of video in this run",
    "expected_recall": "user-day recall the production models' latest evaluation measured at sample_fps; null: none",
    "retrain_date": "the date the retrain ran as of (labels known by then)",
    "role": "champion (production when the retrain started) or challenger",
    "evaluation_dates": "the held-out days both pairs were evaluated on (JSON)",
    "true_user_brands": "user-brands truly seen on the held-out days",
    "predicted_user_brands": "user-brands the pair confirmed", "precision": "user-day precision",
    "precision_low": "its 95% Wilson lower bound", "precision_high": "its 95% Wilson upper bound",
    "recall": "user-day recall", "recall_low": "its 95% Wilson lower bound", "recall_high": "its upper bound",
    "brand_recall": "user-day recall per brand (JSON)", "flops_per_frame": "cascade FLOPs per sampled frame",
    "prefilter_pass_rate": "share of sampled frames passing the prefilter",
    "heavy_run_rate": "share of sampled frames the heavy model ran on",
    "model_cpu_s_per_frame": "CPU seconds of the prefilter and heavy stages per sampled frame",
    "promoted": "the challenger became production", "decision": "the decision and why",
    "gates": "every gate's verdict (JSON)", "report": "the decision's HTML report",
    "decided_at": "when the decision was taken (UTC)",
    "row_number": "the row's number in the imported file (1 = first data row)", "raw": "the row as imported (JSON)",
    **{f"cpu_s_{s}": f"CPU seconds of the {s} stage" for s in STAGES},
}


def names(columns: Columns) -> list[str]:
    return [c.name for c in columns]


def spark_schema(columns: Columns) -> "StructType":
    """The columns as a pyspark StructType (pyspark is imported only here)."""
    from pyspark.sql import types as T

    types = {"string": T.StringType, "int": T.IntegerType, "bigint": T.LongType, "double": T.DoubleType,
             "boolean": T.BooleanType, "binary": T.BinaryType, "timestamp": T.TimestampType}
    return T.StructType([T.StructField(c.name, types[c.type](), c.nullable) for c in columns])


def sql_string(text: str) -> str:
    """A Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ddl(columns: Columns, comments: bool = False) -> str:
    """`name` type, ... for CREATE TABLE (with each column's COMMENT from COLUMN_COMMENTS if asked)."""
    return ", ".join(f"`{c.name}` {c.type}" + (f" COMMENT {sql_string(COLUMN_COMMENTS[c.name])}"
                                               if comments and c.name in COLUMN_COMMENTS else "")
                     for c in columns)
