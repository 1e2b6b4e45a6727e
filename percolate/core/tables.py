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
    "pipeline_runs": _cols(
        "run_id string, status string, started_at timestamp, finished_at timestamp, videos int, videos_ok int, "
        "videos_quarantined int, video_seconds double, sampled_frames bigint, prefilter_passed bigint, "
        "heavy_model_runs bigint, heavy_positives bigint, user_brand_rows int, user_brand_detections int, "
        + ", ".join(f"cpu_s_{s} double" for s in STAGES) + ", "
        "cpu_s_total double, estimated_cost_usd double, cost_per_video_hour_usd double, decode_modes string, "
        "warnings string, validation string, data_docs string") + tuple(
        c for c in PROVENANCE if c.name != "run_id"),
}
# How each table's rows are ordered when compared or shown (a key of the table).
WAREHOUSE_KEYS: dict[str, tuple[str, ...]] = {
    "frame_predictions": ("call_id", "frame_index"), "user_brand_daily": ("user_id", "brand"),
    "quarantine": ("call_id",), "pipeline_runs": ("run_id",)}


def names(columns: Columns) -> list[str]:
    return [c.name for c in columns]


def spark_schema(columns: Columns) -> "StructType":
    """The columns as a pyspark StructType (pyspark is imported only here)."""
    from pyspark.sql import types as T

    types = {"string": T.StringType, "int": T.IntegerType, "bigint": T.LongType, "double": T.DoubleType,
             "boolean": T.BooleanType, "binary": T.BinaryType, "timestamp": T.TimestampType}
    return T.StructType([T.StructField(c.name, types[c.type](), c.nullable) for c in columns])


def ddl(columns: Columns) -> str:
    """`name` type, ... for CREATE TABLE."""
    return ", ".join(f"`{c.name}` {c.type}" for c in columns)
