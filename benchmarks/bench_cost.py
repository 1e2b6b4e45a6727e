"""`make bench`: Percolate's cost per video-hour against the naive pipeline and the decode limit.

    python benchmarks/bench_cost.py [--smoke] [--root var/bench]

Generates (or reuses, cached by its parameters) a seeded benchmark day in two encodings,
runs the decode limit, the fused floor, naive, sampled-only and Percolate (the nightly DAG
through Airflow) on the same files, prints a table of ratios and writes
var/reports/bench/latest.json and latest.html. Method: docs/cost.md; the work is in benchmarks/cost/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import replace
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def machine() -> str:
    import psutil

    return (f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"{platform.machine()}, no GPU used")


def main(argv: list[str] | None = None) -> int:
    from benchmarks.cost import figures, report, run
    from benchmarks.cost.day import BENCH_DAY, SMOKE_DAY
    from percolate.core.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny day: every variant runs, figures mean little")
    parser.add_argument("--take", type=int, default=None,
                        help="only the N longest calls of the benchmark day (a smaller day from the same files; "
                             "the report says so)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of the tiny day, and of the decode limit and Percolate on each encoding, the "
                             "median kept (default 3, and 2 on gop10s; the smoke run 1)")
    parser.add_argument("--root", default=None, help="days, home and logs (default: $PERCOLATE_HOME/bench)")
    parser.add_argument("--from-raw", default=None,
                        help="recompute the figures and reports from a run's raw.json instead of running")
    parser.add_argument("--reports", default=None, help="where latest.json/html go (default: var/reports/bench)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    root = Path(args.root) if args.root else settings.home / "bench"
    reports = Path(args.reports) if args.reports else settings.reports_dir / "bench"
    plan = run.BenchPlan(day=SMOKE_DAY, tiny=None, naive_share=0.5, component_files=1, repeats=1) \
        if args.smoke else run.BenchPlan(day=replace(BENCH_DAY, take=args.take))
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        plan = replace(plan, repeats=args.repeats)
    if args.from_raw:
        raw = json.loads(Path(args.from_raw).read_text())
        raw = raw.get("raw", raw)  # a latest.json holds its raw results under "raw"
    else:
        raw = run.run_bench(root.resolve(), plan)
        reports.mkdir(parents=True, exist_ok=True)
        (reports / "raw.json").write_text(json.dumps(raw, indent=1, default=str))  # before any figure
    fig = figures.figures(raw, settings.cost_per_core_hour)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    fig.update(when=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(),
               command=" ".join(["python benchmarks/bench_cost.py", *(sys.argv[1:] if argv is None else argv)])
               if (sys.argv[1:] if argv is None else argv) else "make bench",
               commit=commit, smoke=args.smoke)
    text = report.table(fig)
    path = run.write_latest(raw, fig, reports)
    html = report.write_html(fig, reports / "latest.html", text)
    print(text)
    print(f"\nwrote {path} and {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
