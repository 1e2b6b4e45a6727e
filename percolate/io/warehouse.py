"""The analysts' tables behind one small interface; `open_warehouse` picks the implementation.

Every table is partitioned by `dt` (YYYY-MM-DD) and its columns come from
`percolate.core.tables.WAREHOUSE`. Writing a date replaces exactly that date's partition,
even when the new data for it is empty. The implementation here is a Hive catalog
(Spark's, on the metastore `percolate.io.spark` configures) with Parquet tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from percolate.core.layout import check_date
from percolate.core.tables import WAREHOUSE, ddl, names, spark_schema

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from percolate.core.settings import Settings


class Warehouse(Protocol):
    def ensure_tables(self) -> None:
        """Create the database and every table if missing."""

    def replace_partition(self, table: str, df: "DataFrame", date: str) -> None:
        """Replace partition dt=`date` of `table` with `df` (which has no dt column)."""

    def published_days(self, before: str, days: int) -> list[dict]:
        """The `pipeline_runs` rows of up to `days` published dates before `before`, newest first,
        each with `detections` ({label: detection frames})."""


class HiveWarehouse:
    """Parquet tables in a Hive catalog, one database."""

    def __init__(self, spark: "SparkSession", database: str):
        self.spark, self.database = spark, database

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def ensure_tables(self) -> None:
        self.spark.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        for name, columns in WAREHOUSE.items():
            self.spark.sql(f"CREATE TABLE IF NOT EXISTS {self.table(name)} ({ddl(columns)}, `dt` string) "
                           f"USING parquet PARTITIONED BY (dt)")
            have = self.spark.table(self.table(name)).columns
            if have != [*names(columns), "dt"]:
                raise RuntimeError(
                    f"table {self.database}.{name} was made by another version of Percolate (columns {have}); "
                    f"drop it (or start from an empty PERCOLATE_HOME) and rerun the dates you need")

    def replace_partition(self, table: str, df: "DataFrame", date: str) -> None:
        date = check_date(date)
        view = f"_percolate_publish_{table}"
        conform(df, table).createOrReplaceTempView(view)
        self.spark.sql(f"INSERT OVERWRITE TABLE {self.table(table)} PARTITION (dt='{date}') SELECT * FROM {view}")
        self.spark.catalog.dropTempView(view)

    def published_days(self, before: str, days: int) -> list[dict]:
        runs = self.spark.sql(
            f"SELECT * FROM {self.table('pipeline_runs')} WHERE dt < '{check_date(before)}' "
            f"ORDER BY dt DESC LIMIT {int(days)}").collect()
        if not runs:
            return []
        dates = ", ".join(f"'{r.dt}'" for r in runs)
        detections: dict[str, dict[str, int]] = {}
        for r in self.spark.sql(f"SELECT dt, label, count(*) AS n FROM {self.table('frame_predictions')} "
                                f"WHERE is_detection AND dt IN ({dates}) GROUP BY dt, label").collect():
            detections.setdefault(r.dt, {})[r.label] = r.n
        return [dict(r.asDict(), detections=detections.get(r.dt, {})) for r in runs]


def conform(df: "DataFrame", table: str) -> "DataFrame":
    """Select and cast `df` to the table's columns, in the table's order."""
    from pyspark.sql import functions as F

    schema = spark_schema(WAREHOUSE[table])
    missing = [f.name for f in schema.fields if f.name not in df.columns]
    if missing:
        raise ValueError(f"rows for {table} lack columns {missing}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def open_warehouse(spark: "SparkSession", settings: "Settings") -> Warehouse:
    """The warehouse the settings name: the Hive catalog of `spark`, database `settings.database`."""
    return HiveWarehouse(spark, settings.database)
