"""SQL on the warehouse tables, for analysts and for the demo and tests.

Two engines give the same answers: DuckDB over exactly the partitions the shared catalog
publishes (`percolate.io.published`: about a second, no JVM; needs PERCOLATE_METASTORE_URL)
and Spark SQL on the catalog itself (any metastore). `default_engine` picks DuckDB when the
metastore is shared.

The embedded Derby metastore admits one JVM at a time and stays booted in a JVM until it
exits, even after the session stops. `run_queries` therefore runs Spark in a short-lived child
process by default, so that Spark jobs started afterwards can open the metastore.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from percolate.core.settings import Settings


ENGINES = ("duckdb", "spark")


def default_engine(settings: Settings) -> str:
    return "duckdb" if settings.metastore_url else "spark"


def query_here(settings: Settings, statements: list[str], limit: int | None = None,
               read_only: bool = False, engine: str = "spark") -> list[list[dict]]:
    """Run the statements in this process (DuckDB, or a Spark session); rows as dicts per statement.

    `read_only` (analysts' statements): each must pass `sql_guard.check_read_only`, checked
    before any engine starts; Spark does not read files by path, DuckDB reads nothing but the
    warehouse's files.
    """
    if read_only:
        from workflows.sql_guard import check_read_only

        statements = [check_read_only(sql) for sql in statements]
    if engine == "duckdb":
        return query_duckdb(settings, statements, limit)
    if engine != "spark":
        raise ValueError(f"no engine {engine!r}: choose one of {', '.join(ENGINES)}")
    from percolate.io.spark import get_spark
    from percolate.io.warehouse import open_warehouse

    spark = get_spark("percolate-query", settings, master=settings.spark_master)
    try:
        if read_only:
            spark.conf.set("spark.sql.runSQLOnFiles", "false")
        open_warehouse(spark, settings).ensure_tables()
        spark.sql(f"USE `{settings.database}`")
        results = []
        for sql in statements:
            df = spark.sql(sql)
            rows = df.limit(limit).collect() if limit else df.collect()
            results.append([r.asDict(recursive=True) for r in rows])
        return results
    finally:
        spark.stop()


def query_duckdb(settings: Settings, statements: list[str], limit: int | None = None) -> list[list[dict]]:
    from percolate.io.published import open_duckdb

    con = open_duckdb(settings)
    try:
        results = []
        for sql in statements:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(limit) if limit else cursor.fetchall()
            results.append([dict(zip(columns, row)) for row in rows])
        return results
    finally:
        con.close()


def read_tables(settings: Settings, statements: list[str]) -> list[list[dict]]:
    """Percolate's own reads of the warehouse: DuckDB in this process with the shared metastore;
    else Spark in a child process (its JVM exits, releasing the embedded metastore for the Spark
    job that follows)."""
    if default_engine(settings) == "duckdb":
        return query_here(settings, statements, engine="duckdb")
    return run_queries(settings, statements)


def run_queries(settings: Settings, statements: list[str], limit: int | None = None) -> list[list[dict]]:
    """Run the statements in a child process (its JVM exits, releasing the metastore).

    Values come back through JSON: timestamps and dates as ISO strings.
    """
    with tempfile.TemporaryDirectory(prefix="percolate-sql-") as tmp:
        request, answer = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        request.write_text(json.dumps({"statements": statements, "limit": limit}))
        env_settings = {"PERCOLATE_HOME": str(settings.home), "PERCOLATE_STORE": settings.store_uri,
                        "PERCOLATE_STAGE": settings.stage_uri,
                        "PERCOLATE_DATABASE": settings.database, "PERCOLATE_SPARK_MASTER": settings.spark_master,
                        "PERCOLATE_METASTORE_URL": settings.metastore_url}
        out = subprocess.run([sys.executable, "-m", "workflows.query", str(request), str(answer)],
                             env={**os.environ, **env_settings}, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"query failed: {_error_of(out.stderr)}")
        return json.loads(answer.read_text())


def _error_of(stderr: str) -> str:
    """The useful line of a Spark/Python error (e.g. an AnalysisException), not the JVM noise."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Exception" in line or "Error" in line:
            return line.strip()[:2000]
    return "\n".join(lines[-5:])


def main(argv: list[str] | None = None) -> int:
    request, answer = (argv or sys.argv[1:])[:2]
    job = json.loads(Path(request).read_text())
    results = query_here(Settings.from_env(), job["statements"], job.get("limit"))
    Path(answer).write_text(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
