"""The analysts' tables behind one small interface; `open_warehouse` picks the implementation.

Every table is partitioned by `dt` (YYYY-MM-DD); the columns come from
`percolate.core.tables.WAREHOUSE`. A run publishes a date in two steps:

1. `write` each table's rows to a fresh location keyed by a new publish id
   (`<warehouse>/publishes/<db>/<table>/dt=<date>/publish_id=<id>`), where the audit reads them.
   Nothing a reader sees changes: the location is new and no table points at it yet.
2. `commit`: add the data tables' new partitions (dt, publish_id), each invisible to readers,
   then point `pipeline_runs`' partition of the date at the new row: one metastore operation
   (ADD PARTITION or SET LOCATION), the commit marker. The analysts' names
   `frame_predictions`, `user_brand_daily`, `quarantine` and `calls` are views that show, for each
   date, only the rows of the publish `pipeline_runs` names. So a reader sees the date's old
   publish or its new one, in every table at once, never a mix and never an empty date.

Old publishes are removed by `remove_expired` after a retention period, and only after the new
one is committed. A killed publish leaves an unreferenced location, removed the same way.

Tables written in batches rather than by the nightly run (`labels`, `label_quarantine`, and a
challenger's `shadow_frame_predictions`, `shadow_user_brand_daily`) are partitioned by
(dt, batch): `put_batch` writes a batch to a fresh location and points the partition at it
with one metastore operation, so a re-imported batch replaces the old one whole; a reader sees
the old batch or the new one.

The implementation is a Hive catalog (Spark's, on the metastore `percolate.io.spark`
configures): the data tables live in database `<db>_publishes`, partitioned by
(dt, publish_id); the views and `pipeline_runs` in `<db>`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Protocol

from percolate.core.layout import check_date
from percolate.core.tables import (BATCH_TABLES, COLUMN_COMMENTS, RUN_TABLES, TABLE_COMMENTS, WAREHOUSE, ddl,
                                   names, spark_schema, sql_string)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from percolate.core.settings import Settings

COMMIT_TABLE = "pipeline_runs"  # its rows carry `publish_id`: the views show that publish's rows


def new_publish_id(now: dt.datetime | None = None) -> str:
    """A fresh publish id, ordered by time: 20261201T054500Z-1a2b3c4d."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def publish_time(publish_id: str) -> dt.datetime:
    return dt.datetime.strptime(publish_id.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


class Warehouse(Protocol):
    def ensure_tables(self) -> None:
        """Create the databases, tables and views if missing."""

    def write(self, table: str, df: "DataFrame", date: str, publish_id: str) -> "DataFrame":
        """Write `df` (no dt column) as `table`'s rows of `date` under `publish_id`, visible to
        nobody yet; returns the rows as read back from there."""

    def commit(self, date: str, publish_id: str) -> None:
        """Make `publish_id`'s rows of `date` the visible ones, in every table at once."""

    def committed(self, date: str) -> str | None:
        """The publish id readers see for `date`, or None."""

    def remove_expired(self, date: str, retention: dt.timedelta) -> list[str]:
        """Remove `date`'s publishes other than the committed one that are older than
        `retention`; returns their ids."""

    def put_batch(self, table: str, df: "DataFrame", date: str, batch: str,
                  retention: dt.timedelta = dt.timedelta(hours=24)) -> "DataFrame":
        """Make `df` the rows of a batch table's partition (date, batch), replacing what it held."""

    def audit_labels(self, before: str, days: int, prefilter_version: str, prefilter_threshold: float
                     ) -> tuple["pd.DataFrame", "pd.DataFrame"]:
        """The audit_frames rows (with `day`) of the `days` dates before `before` drawn under this
        prefilter, and the frame labels about them known by the end of `before`."""

    def published_days(self, before: str, days: int) -> list[dict]:
        """The `pipeline_runs` rows of up to `days` published dates before `before`, newest first,
        each with `detections` ({label: detection frames})."""


class HiveWarehouse:
    """Parquet tables in a Hive catalog: views and `pipeline_runs` in `database`, the publishes
    in `database`_publishes."""

    def __init__(self, spark: "SparkSession", database: str, root: str):
        self.spark, self.database, self.root = spark, database, root.rstrip("/")
        self.store_db = f"{database}_publishes"

    def table(self, name: str) -> str:
        """What analysts query: a view (data tables) or the table (`pipeline_runs`)."""
        return f"`{self.database}`.`{name}`"

    def stored(self, name: str) -> str:
        """Where a table's rows are kept, every publish of every date."""
        return self.table(name) if name == COMMIT_TABLE or name in BATCH_TABLES else f"`{self.store_db}`.`{name}`"

    def location(self, table: str, date: str, publish_id: str) -> str:
        return f"{self.root}/publishes/{self.database}/{table}/dt={check_date(date)}/publish_id={publish_id}"

    def ensure_tables(self) -> None:
        self.spark.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}` "
                       f"COMMENT 'Percolate: predictions per date (views over the committed publish of each date)'")
        self.spark.sql(f"CREATE DATABASE IF NOT EXISTS `{self.store_db}` "
                       f"COMMENT 'Percolate: every publish of every date; read the views in {self.database}'")
        existing = {r.tableName for r in self.spark.sql(f"SHOW TABLES IN `{self.database}`").collect()}
        for name in existing & set(RUN_TABLES):
            if self.spark.catalog.getTable(f"{self.database}.{name}").tableType != "VIEW":
                raise RuntimeError(
                    f"table {self.database}.{name} was made by another version of Percolate (a table, not a view "
                    f"over the publishes); drop database {self.database} (or start from an empty PERCOLATE_HOME) "
                    f"and rerun the dates you need")
        self._create(COMMIT_TABLE, WAREHOUSE[COMMIT_TABLE], "PARTITIONED BY (dt)")
        for name in RUN_TABLES:
            self._create(name, WAREHOUSE[name], "PARTITIONED BY (dt, publish_id)")
            if name not in existing:
                self.spark.sql(self._view_sql(name))
        for name in BATCH_TABLES:
            self._create(name, WAREHOUSE[name], "PARTITIONED BY (dt, batch)")
        for name, expected in [(COMMIT_TABLE, [*names(WAREHOUSE[COMMIT_TABLE]), "dt"])] + [
                (n, [*names(WAREHOUSE[n]), "dt", "publish_id"]) for n in RUN_TABLES] + [
                (n, [*names(WAREHOUSE[n]), "dt", "batch"]) for n in BATCH_TABLES]:
            have = self.spark.table(self.stored(name)).columns
            if have != expected and name not in RUN_TABLES:
                have = self._add_new_columns(name, have, expected)
            if have != expected:
                raise RuntimeError(
                    f"table {self.stored(name)} was made by another version of Percolate (columns {have}); "
                    f"drop databases {self.database} and {self.store_db} (or start from an empty PERCOLATE_HOME) "
                    f"and rerun the dates you need")

    def _add_new_columns(self, name: str, have: list[str], expected: list[str]) -> list[str]:
        """A table (not a view) of an earlier version that lacks only columns added since, at the
        end of its data columns, gets them (null in its old rows); returns its columns now."""
        parts = ["dt", "batch"] if name in BATCH_TABLES else ["dt"]
        data_have, data_want = have[:len(have) - len(parts)], expected[:len(expected) - len(parts)]
        if have[len(data_have):] != parts or data_want[:len(data_have)] != data_have:
            return have
        added = [c for c in WAREHOUSE[name] if c.name in data_want[len(data_have):]]
        self.spark.sql(f"ALTER TABLE {self.stored(name)} ADD COLUMNS ({ddl(added, comments=True)})")
        self.spark.catalog.refreshTable(self.stored(name))
        return self.spark.table(self.stored(name)).columns

    def _create(self, name: str, columns, partitioning: str) -> None:
        extra = (", `publish_id` string" if name in RUN_TABLES else
                 f", `batch` string COMMENT {sql_string(COLUMN_COMMENTS['batch'])}" if name in BATCH_TABLES else "")
        self.spark.sql(f"CREATE TABLE IF NOT EXISTS {self.stored(name)} ({ddl(columns, comments=True)}, "
                       f"`dt` string COMMENT {sql_string(COLUMN_COMMENTS['dt'])}{extra}) USING parquet "
                       f"{partitioning} COMMENT {sql_string(TABLE_COMMENTS[name])}")

    def _view_sql(self, name: str) -> str:
        cols = [*names(WAREHOUSE[name]), "dt"]
        listed = ", ".join(f"`{c}`" for c in cols)
        return (f"CREATE VIEW IF NOT EXISTS {self.table(name)} ({ddl_for_view(cols)}) "
                f"COMMENT {sql_string(TABLE_COMMENTS[name] + ' (committed publishes only)')} AS "
                f"SELECT {listed} FROM {self.stored(name)} t LEFT SEMI JOIN {self.table(COMMIT_TABLE)} r "
                f"ON t.dt = r.dt AND t.publish_id = r.publish_id")

    def write(self, table: str, df: "DataFrame", date: str, publish_id: str) -> "DataFrame":
        path = self.location(table, date, publish_id)
        conform(df, table).write.mode("errorifexists").parquet(path)
        return self.spark.read.schema(spark_schema(WAREHOUSE[table])).parquet(path)

    def commit(self, date: str, publish_id: str) -> None:
        date = check_date(date)
        for name in RUN_TABLES:
            self.spark.sql(f"ALTER TABLE {self.stored(name)} ADD IF NOT EXISTS "
                           f"PARTITION (dt='{date}', publish_id='{publish_id}') "
                           f"LOCATION '{self.location(name, date, publish_id)}'")
        # the commit marker: one metastore operation switches every view to the new publish
        marker = self.location(COMMIT_TABLE, date, publish_id)
        if self._has_partition(COMMIT_TABLE, date):
            self.spark.sql(f"ALTER TABLE {self.table(COMMIT_TABLE)} PARTITION (dt='{date}') SET LOCATION '{marker}'")
        else:
            self.spark.sql(f"ALTER TABLE {self.table(COMMIT_TABLE)} ADD PARTITION (dt='{date}') LOCATION '{marker}'")
        self.spark.catalog.refreshTable(self.table(COMMIT_TABLE))

    def _has_partition(self, table: str, date: str, batch: str | None = None) -> bool:
        spec = f"dt='{date}'" + (f", batch='{batch}'" if batch is not None else "")
        rows = self.spark.sql(f"SHOW PARTITIONS {self.table(table)} PARTITION ({spec})").collect()
        return bool(rows)

    def put_batch(self, table: str, df: "DataFrame", date: str, batch: str,
                  retention: dt.timedelta = dt.timedelta(hours=24)) -> "DataFrame":
        """Make `df` the rows of `table`'s partition (date, batch), replacing what it held, with
        one metastore operation; returns the rows as read back. Earlier writes of the batch are
        removed once older than `retention` (a reader may still be reading them)."""
        if table not in BATCH_TABLES:
            raise ValueError(f"{table} is not written in batches")
        date, batch = check_date(date), check_batch(batch)
        folder = f"{self.root}/batches/{self.database}/{table}/dt={date}/batch={batch}"
        write_id = new_publish_id()
        path = f"{folder}/write={write_id}"
        conform(df, table).write.mode("errorifexists").parquet(path)
        spec = f"PARTITION (dt='{date}', batch='{batch}')"
        if self._has_partition(table, date, batch):
            self.spark.sql(f"ALTER TABLE {self.table(table)} {spec} SET LOCATION '{path}'")
        else:
            self.spark.sql(f"ALTER TABLE {self.table(table)} ADD {spec} LOCATION '{path}'")
        self.spark.catalog.refreshTable(self.table(table))
        fs, jvm = self._fs()
        now = dt.datetime.now(dt.timezone.utc)
        listed = fs.listStatus(jvm.org.apache.hadoop.fs.Path(folder))
        for status in listed:
            old = status.getPath().getName().removeprefix("write=")
            if old != write_id and now - publish_time(old) >= retention:
                fs.delete(status.getPath(), True)
        return self.spark.read.schema(spark_schema(WAREHOUSE[table])).parquet(path)

    def committed(self, date: str) -> str | None:
        row = self.spark.sql(f"SELECT publish_id FROM {self.table(COMMIT_TABLE)} "
                             f"WHERE dt = '{check_date(date)}'").first()
        return row.publish_id if row else None

    def publishes(self, date: str) -> set[str]:
        """Every publish id of `date` with a location, committed or not."""
        fs, jvm = self._fs()
        found = set()
        for name in (*RUN_TABLES, COMMIT_TABLE):
            folder = jvm.org.apache.hadoop.fs.Path(f"{self.root}/publishes/{self.database}/{name}/dt={date}")
            if fs.exists(folder):
                found |= {s.getPath().getName().removeprefix("publish_id=") for s in fs.listStatus(folder)}
        return found

    def remove_expired(self, date: str, retention: dt.timedelta) -> list[str]:
        date = check_date(date)
        keep = self.committed(date)
        now = dt.datetime.now(dt.timezone.utc)
        expired = sorted(p for p in self.publishes(date) if p != keep and now - publish_time(p) >= retention)
        fs, jvm = self._fs()
        for publish_id in expired:
            for name in RUN_TABLES:
                self.spark.sql(f"ALTER TABLE {self.stored(name)} DROP IF EXISTS "
                               f"PARTITION (dt='{date}', publish_id='{publish_id}')")
            for name in (*RUN_TABLES, COMMIT_TABLE):
                fs.delete(jvm.org.apache.hadoop.fs.Path(self.location(name, date, publish_id)), True)
        return expired

    def _fs(self):
        jvm = self.spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(self.root)
        return path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration()), jvm

    def audit_labels(self, before: str, days: int, prefilter_version: str, prefilter_threshold: float
                     ) -> tuple["pd.DataFrame", "pd.DataFrame"]:
        before = check_date(before)
        first = (dt.date.fromisoformat(before) - dt.timedelta(days=int(days))).isoformat()
        end = (dt.date.fromisoformat(before) + dt.timedelta(days=1)).isoformat()
        sample = self.spark.sql(
            f"SELECT dt AS day, call_id, frame_index, stratum, stratum_frames FROM {self.table('audit_frames')} "
            f"WHERE dt >= '{first}' AND dt < '{before}' AND prefilter_version = {sql_string(prefilter_version)} "
            f"AND prefilter_threshold = {float(prefilter_threshold)!r}").toPandas()
        labels = self.spark.sql(
            f"SELECT day, call_id, frame_index, brand, verdict, known_at FROM {self.table('labels')} "
            f"WHERE call_id IS NOT NULL AND day >= '{first}' AND day < '{before}' "
            f"AND known_at < TIMESTAMP '{end} 00:00:00'").toPandas()
        return sample, labels

    def published_days(self, before: str, days: int) -> list[dict]:
        runs = self.spark.sql(
            f"SELECT * FROM {self.table(COMMIT_TABLE)} WHERE dt < '{check_date(before)}' "
            f"ORDER BY dt DESC LIMIT {int(days)}").collect()
        if not runs:
            return []
        dates = ", ".join(f"'{r.dt}'" for r in runs)
        detections: dict[str, dict[str, int]] = {}
        for r in self.spark.sql(f"SELECT dt, label, count(*) AS n FROM {self.table('frame_predictions')} "
                                f"WHERE is_detection AND dt IN ({dates}) GROUP BY dt, label").collect():
            detections.setdefault(r.dt, {})[r.label] = r.n
        return [dict(r.asDict(), detections=detections.get(r.dt, {})) for r in runs]


def check_batch(batch: str) -> str:
    """A batch name: letters, digits, '.', '_', '-' and '+' (it names a partition and a folder)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", batch or ""):
        raise ValueError(f"bad batch name {batch!r}: letters, digits, '.', '_', '-', '+'")
    return batch


def ddl_for_view(cols: list[str]) -> str:
    """A view's column list with the columns' comments."""
    return ", ".join(f"`{c}` COMMENT {sql_string(COLUMN_COMMENTS[c])}" if c in COLUMN_COMMENTS else f"`{c}`"
                     for c in cols)


def conform(df: "DataFrame", table: str) -> "DataFrame":
    """Select and cast `df` to the table's columns, in the table's order."""
    from pyspark.sql import functions as F

    schema = spark_schema(WAREHOUSE[table])
    missing = [f.name for f in schema.fields if f.name not in df.columns]
    if missing:
        raise ValueError(f"rows for {table} lack columns {missing}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def open_warehouse(spark: "SparkSession", settings: "Settings") -> Warehouse:
    """The warehouse the settings name: the Hive catalog of `spark`, database `settings.database`,
    publishes under the Spark warehouse directory."""
    return HiveWarehouse(spark, settings.database, str(settings.warehouse_dir))
