"""An analyst polling the warehouse while runs publish (the end-to-end tests' reader).

    python tests/e2e/poll_reader.py DATE[,DATE...] OUT.jsonl STOPFILE

Every poll reads the dates from the four views and `pipeline_runs` in one statement and
writes one JSON line per poll: per date and table, the row count and the distinct publish
times (`published_at`) among its rows (a date not published yet has none). Settings come
from the environment (PERCOLATE_*).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from percolate.core.settings import Settings
from percolate.core.tables import RUN_TABLES
from percolate.io.spark import get_spark
from percolate.io.warehouse import open_warehouse

TABLES = RUN_TABLES  # every table a publish writes beside pipeline_runs


def main(dates: str, out: str, stop: str) -> int:
    settings = Settings.from_env()
    spark = get_spark("percolate-poll-reader", settings, master="local[1]")
    open_warehouse(spark, settings).ensure_tables()  # as `percolate query` does: empty before the first run
    db = settings.database
    listed = ", ".join(f"'{d}'" for d in dates.split(","))
    sql = " UNION ALL ".join(
        f"SELECT dt, '{t}' AS t, count(*) AS n, sort_array(collect_set(CAST(published_at AS string))) AS at "
        f"FROM `{db}`.`{t}` WHERE dt IN ({listed}) GROUP BY dt" for t in (*TABLES, "pipeline_runs"))
    with open(out, "a") as f:
        while not Path(stop).exists():
            started = time.time()
            try:
                rows: dict[str, dict] = {d: {} for d in dates.split(",")}
                for r in spark.sql(sql).collect():
                    rows[r.dt][r.t] = {"n": r.n, "at": list(r.at)}
                f.write(json.dumps({"t": started, "dates": rows}) + "\n")
            except Exception as exc:  # noqa: BLE001 - a failed read is an observation too
                f.write(json.dumps({"t": started, "error": str(exc)[:500]}) + "\n")
            f.flush()
            time.sleep(0.2)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
