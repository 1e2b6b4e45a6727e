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
        c for c in PROVENANCE if c.name != "run_id") + _cols("publish_id string"),
    # Labels: what people said about a frame or a user-day (the reorder button, the audit sample,
    # imported files), partitioned by the date the label arrived (dt) and its batch (one import,
    # one night's button clicks): a batch is replaced whole, never merged.
    "labels": _cols(
        "label_id string, subject string, call_id string, frame_index int, user_id string, day string, "
        "brand string, verdict string, source string, known_at timestamp"),
    "label_quarantine": _cols("row_number int, raw string, reason string, message string"),
}
LABEL_TABLES: tuple[str, ...] = ("labels", "label_quarantine")  # written in batches, not by the nightly run
LABEL_SOURCES: tuple[str, ...] = ("reorder_button", "audit", "import")
LABEL_VERDICTS: tuple[str, ...] = ("confirmed", "rejected")
# How each table's rows are ordered when compared or shown (a key of the table).
WAREHOUSE_KEYS: dict[str, tuple[str, ...]] = {
    "frame_predictions": ("call_id", "frame_index"), "user_brand_daily": ("user_id", "brand"),
    "quarantine": ("call_id",), "calls": ("call_id",), "pipeline_runs": ("run_id",)}
# The tables whose rows a run publishes beside its `pipeline_runs` row (the commit marker).
RUN_TABLES: tuple[str, ...] = ("frame_predictions", "user_brand_daily", "quarantine", "calls")

TABLE_COMMENTS: dict[str, str] = {
    "frame_predictions": "One row per sampled frame that passed the prefilter, with the heavy model's best label",
    "user_brand_daily": "One row per user and brand seen that day; confirmed = the model's user-day rule held",
    "quarantine": "One row per video that could not be processed, with a reason code",
    "calls": "One row per video of the day: processed or quarantined, and what was spent on it",
    "pipeline_runs": "One row per date: the run that published it (funnel, cost, validation, provenance)",
    "labels": "One row per label a person gave a frame or a user-day (dt: the date it arrived)",
    "label_quarantine": "One row per label row refused at import, with a reason code",
}
# What each warehouse column means (a name means the same in every table), shown by DESCRIBE.
COLUMN_COMMENTS: dict[str, str] = {
    "call_id": "the call (one stored video)", "user_id": "the user whose call it is",
    "video_key": "the video's key in the object store",
    "frame_index": "index of the sampled frame within its call", "ts_ms": "frame timestamp, ms from call start",
    "prefilter_score": "prefilter score (higher: more likely a brand)",
    "loc_x": "prefilter's location estimate, x in [0, 1]", "loc_y": "prefilter's location estimate, y in [0, 1]",
    "decode_mode": "how frames were decoded (keyframes only, or all frames)",
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
    "status": "ok: processed; otherwise quarantined (calls) / the run's outcome (pipeline_runs)",
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
    "batch": "the import or night the label came with (replaced whole on re-import)",
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
