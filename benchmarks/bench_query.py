"""How fast analysts get answers: the queries of docs/analysts.md on each engine.

    eval "$(infra/postgres.sh start)"     # a shared metastore with published dates
    python benchmarks/bench_query.py [--repeats 3] [--thrift-port 10000]

Times, on the warehouse the environment names (PERCOLATE_HOME, PERCOLATE_METASTORE_URL):
- `percolate query` as an analyst runs it (a new process per query; DuckDB over the catalog's
  published partitions): wall seconds per query, the median of `--repeats`;
- the same queries on DuckDB inside one process (what the engine itself costs);
- `percolate query --engine spark` for one query (a JVM and a metastore connection each time);
- with `--thrift-port`, each query through beeline on a running Thrift server (infra/thrift.sh).
Prints a table and writes var/reports/bench/query.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--thrift-port", type=int)
    args = parser.parse_args()

    from analysts_queries import analysts_queries
    from percolate.core.settings import Settings
    from workflows.query import query_here

    settings = Settings.from_env()
    if not settings.metastore_url:
        raise SystemExit("set PERCOLATE_METASTORE_URL (infra/postgres.sh start): DuckDB reads the shared catalog")
    env = dict(os.environ)
    cli = str(Path(sys.executable).parent / "percolate")
    queries = analysts_queries()
    rows = []
    for i, sql in enumerate(queries, 1):
        cli_s = statistics.median(timed([cli, "query", "--json", sql], env) for _ in range(args.repeats))
        t = time.perf_counter()
        for _ in range(args.repeats):
            query_here(settings, [sql], read_only=True, engine="duckdb")
        in_process = (time.perf_counter() - t) / args.repeats
        row = {"query": i, "first_line": sql.splitlines()[0][:60], "percolate_query_s": round(cli_s, 2),
               "duckdb_in_process_s": round(in_process, 3)}
        if args.thrift_port:
            from workflows.thrift_server import jdbc_url

            beeline = [str(REPO / "infra" / "beeline.sh"), "-u", jdbc_url(settings, args.thrift_port),
                       "-n", "analyst", "--silent=true", "-e", sql]
            row["beeline_thrift_s"] = round(statistics.median(timed(beeline, env) for _ in range(args.repeats)), 2)
        rows.append(row)
    spark_s = timed([cli, "query", "--engine", "spark", "--json", queries[0]], env)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores",
              "command": "python benchmarks/bench_query.py " + " ".join(sys.argv[1:]), "queries": rows,
              "percolate_query_median_s": statistics.median(r["percolate_query_s"] for r in rows),
              "spark_engine_one_query_s": round(spark_s, 1)}
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))
    print(f"percolate query (DuckDB), median over queries: {result['percolate_query_median_s']:.2f} s; "
          f"--engine spark, one query: {result['spark_engine_one_query_s']:.1f} s")
    out = settings.reports_dir / "bench" / "query.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
