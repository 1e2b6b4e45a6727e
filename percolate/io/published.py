"""The warehouse's published rows for engines other than Spark (DuckDB), read straight from the
shared Hive metastore so they always match what the catalog publishes.

One query on the metastore's own tables (PostgreSQL: DBS, TBLS, PARTITIONS, SDS) lists every
partition's location in one transaction: `pipeline_runs`' partitions are the committed
publishes (`percolate.io.warehouse`), and each names its publish id; the data tables' rows of a
date are those of that publish. So a DuckDB reader sees, like a Spark reader, one whole publish
per date, taken from a single consistent snapshot of the catalog.

The embedded Derby metastore cannot be read while a Spark application holds it, so this needs
`PERCOLATE_METASTORE_URL`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from percolate.core.tables import BATCH_TABLES, RUN_TABLES, WAREHOUSE
from percolate.io.warehouse import COMMIT_TABLE

if TYPE_CHECKING:
    import duckdb

    from percolate.core.settings import Settings

DUCK_TYPES = {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
              "boolean": "BOOLEAN", "binary": "BLOB", "timestamp": "TIMESTAMP"}


@dataclass(frozen=True)
class Partition:
    database: str
    table: str
    values: dict[str, str]  # dt, publish_id
    location: str  # a local path


def _local(location: str) -> str:
    if location.startswith("file:"):
        return unquote(urlsplit(location).path)
    if "://" in location:
        raise ValueError(f"only local warehouse locations can be read by DuckDB here, got {location!r}")
    return location


def catalog_partitions(settings: "Settings") -> list[Partition]:
    """Every partition of Percolate's two databases, from one snapshot of the metastore."""
    import psycopg2

    if not settings.metastore_url:
        raise ValueError("DuckDB reads the shared metastore: set PERCOLATE_METASTORE_URL (or use --engine spark)")
    parts = urlsplit(settings.metastore_url)
    conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, dbname=parts.path.strip("/"),
                            user=unquote(parts.username or ""), password=unquote(parts.password or ""))
    try:
        conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
        with conn.cursor() as cur:
            cur.execute(
                'SELECT d."NAME", t."TBL_NAME", p."PART_NAME", s."LOCATION" FROM "PARTITIONS" p '
                'JOIN "TBLS" t ON p."TBL_ID" = t."TBL_ID" JOIN "DBS" d ON t."DB_ID" = d."DB_ID" '
                'JOIN "SDS" s ON p."SD_ID" = s."SD_ID" WHERE d."NAME" IN (%s, %s)',
                (settings.database, f"{settings.database}_publishes"))
            rows = cur.fetchall()
    finally:
        conn.close()
    return [Partition(db, table, dict(kv.split("=", 1) for kv in name.split("/")), _local(location))
            for db, table, name, location in rows]


def _select(table: str, sources: list[tuple[tuple[str, ...], str]], keys: tuple[str, ...] = ("dt",),
            present=None) -> str:
    """The table's columns and partition keys (dt; batch for batch tables) from Parquet folders,
    one (key values, folder) per partition; a key value is a plain date or batch name.
    `present(folder)` names the columns a folder's files have: a column added to the table
    since they were written reads as null (as Spark reads it)."""
    cols = WAREHOUSE[table]
    if not sources:  # nothing published: an empty view with the right columns
        typed = ", ".join(f"CAST(NULL AS {DUCK_TYPES[c.type]}) AS \"{c.name}\"" for c in cols)
        return f"SELECT {typed}, " + ", ".join(f"CAST(NULL AS VARCHAR) AS {k}" for k in keys) + " WHERE false"

    def listed(folder: str) -> str:
        have = present(folder) if present else None
        return ", ".join(f'"{c.name}"' if have is None or c.name in have
                         else f'CAST(NULL AS {DUCK_TYPES[c.type]}) AS "{c.name}"' for c in cols)

    return " UNION ALL ".join(
        f"SELECT {listed(folder)}, " + ", ".join(f"'{v}' AS {k}" for k, v in zip(keys, values))
        + f" FROM read_parquet('{folder}/*.parquet')" for values, folder in sorted(sources))


def register_views(con: "duckdb.DuckDBPyConnection", partitions: list[Partition], database: str) -> dict[str, int]:
    """Create a view per warehouse table over exactly the committed publishes; dates per table."""
    commits = [((p.values["dt"],), p.location) for p in partitions
               if p.database == database and p.table == COMMIT_TABLE]

    def present(folder: str) -> set[str]:
        return {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{folder}/*.parquet')").fetchall()}

    con.execute(f"CREATE OR REPLACE VIEW {COMMIT_TABLE} AS {_select(COMMIT_TABLE, commits, present=present)}")
    committed = {(r[0], r[1]) for r in con.execute(f"SELECT dt, publish_id FROM {COMMIT_TABLE}").fetchall()}
    dates = {COMMIT_TABLE: len(commits)}
    for table in RUN_TABLES:
        sources = [((p.values["dt"],), p.location) for p in partitions
                   if p.database == f"{database}_publishes" and p.table == table
                   and (p.values.get("dt"), p.values.get("publish_id")) in committed]
        con.execute(f"CREATE OR REPLACE VIEW {table} AS {_select(table, sources)}")
        dates[table] = len(sources)
    for table in BATCH_TABLES:  # (dt, batch) partitions, each pointing at its batch's current write
        sources = [((p.values["dt"], p.values["batch"]), p.location) for p in partitions
                   if p.database == database and p.table == table]
        con.execute(f"CREATE OR REPLACE VIEW {table} AS {_select(table, sources, ('dt', 'batch'), present)}")
        dates[table] = len(sources)
    return dates


def open_duckdb(settings: "Settings") -> "duckdb.DuckDBPyConnection":
    """An in-memory DuckDB with the warehouse's views, reading only the warehouse's files."""
    import duckdb

    con = duckdb.connect(":memory:")
    register_views(con, catalog_partitions(settings), settings.database)
    # analysts' statements read the views and nothing else on this machine
    con.execute(f"SET allowed_directories = ['{settings.warehouse_dir}/']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
