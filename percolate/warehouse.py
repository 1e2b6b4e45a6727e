"""The analysts' tables: schemas, creation and per-date partition replacement.

Every table is partitioned by `dt` (YYYY-MM-DD). Writing a date replaces exactly that
date's partition, even when the new data for it is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import types as T

from percolate.layout import check_date

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

S, I, L, D, B, TS = (T.StringType(), T.IntegerType(), T.LongType(), T.DoubleType(),
                     T.BooleanType(), T.TimestampType())


def _schema(*fields: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(n, t, True) for n, t in fields])


PROVENANCE = (
    ("run_id", S), ("prefilter_version", S), ("heavy_version", S), ("prefilter_threshold", D),
    ("heavy_threshold", D), ("aggregation", S), ("sampler", S), ("published_at", TS),
    ("heavy_reuse_tolerance", D),
)

TABLES: dict[str, T.StructType] = {
    "frame_predictions": _schema(
        ("call_id", S), ("user_id", S), ("frame_index", I), ("ts_ms", L), ("prefilter_score", D),
        ("loc_x", D), ("loc_y", D), ("label", S), ("score", D), ("none_score", D), ("is_detection", B), ("decode_mode", S),
        *PROVENANCE,
        ("reused_from", I),  # frame of the call whose heavy output this row reuses; null: the model ran
    ),
    "user_brand_daily": _schema(
        ("user_id", S), ("brand", S), ("frames", I), ("calls", I), ("max_score", D), ("mean_score", D),
        ("first_seen_call_id", S), ("first_seen_ts_ms", L), ("last_seen_call_id", S),
        ("last_seen_ts_ms", L), ("confirmed", B), *PROVENANCE,
    ),
    "quarantine": _schema(
        ("call_id", S), ("user_id", S), ("video_key", S), ("reason", S), ("message", S), ("run_id", S),
        ("published_at", TS),
    ),
    "pipeline_runs": _schema(
        ("run_id", S), ("status", S), ("started_at", TS), ("finished_at", TS),
        ("videos", I), ("videos_ok", I), ("videos_quarantined", I), ("video_seconds", D),
        ("sampled_frames", L), ("prefilter_passed", L), ("heavy_positives", L),
        ("user_brand_rows", I), ("user_brand_detections", I),
        ("cpu_s_sample_frames", D), ("cpu_s_prefilter", D), ("cpu_s_heavy", D), ("cpu_s_publish", D),
        ("cpu_s_total", D), ("estimated_cost_usd", D), ("cost_per_video_hour_usd", D),
        ("prefilter_version", S), ("heavy_version", S), ("prefilter_threshold", D),
        ("heavy_threshold", D), ("aggregation", S), ("sampler", S), ("decode_modes", S),
        ("warnings", S), ("validation", S), ("data_docs", S), ("code_version", S),
        ("heavy_model_runs", L), ("heavy_reuse_tolerance", D),
    ),
}


def qualified(database: str, table: str) -> str:
    return f"`{database}`.`{table}`"


def ensure_tables(spark: "SparkSession", database: str) -> None:
    """Create the database and every table if missing (Parquet, partitioned by dt).

    A table made by an older version gains the columns added since (new columns only ever
    go at the end); its old partitions read them as null.
    """
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    for name, schema in TABLES.items():
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in schema.fields)
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {qualified(database, name)} ({columns}, `dt` string) "
            f"USING parquet PARTITIONED BY (dt)"
        )
        have = set(spark.table(qualified(database, name)).columns)
        missing = [f for f in schema.fields if f.name not in have]
        if missing:
            added = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
            spark.sql(f"ALTER TABLE {qualified(database, name)} ADD COLUMNS ({added})")


def conform(df: "DataFrame", table: str) -> "DataFrame":
    """Select and cast `df` to the table's columns, in the table's order."""
    from pyspark.sql import functions as F

    schema = TABLES[table]
    missing = [f.name for f in schema.fields if f.name not in df.columns]
    if missing:
        raise ValueError(f"rows for {table} lack columns {missing}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def overwrite_partition(spark: "SparkSession", df: "DataFrame", database: str, table: str, date: str) -> None:
    """Replace partition dt=`date` of `table` with `df` (which has no dt column)."""
    date = check_date(date)
    view = f"_percolate_publish_{table}"
    conform(df, table).createOrReplaceTempView(view)
    spark.sql(
        f"INSERT OVERWRITE TABLE {qualified(database, table)} PARTITION (dt='{date}') SELECT * FROM {view}"
    )
    spark.catalog.dropTempView(view)
