"""The `percolate` command line. Figures go to stdout (one JSON document with --json);
progress and logs go to stderr.

This module is the parser and one thin `cmd_*` per command (read the arguments, call the
workflow module that does the work, print); the `percolate models` group (the registry and
promotion) lives in `workflows/cli_models.py`. Work goes in `workflows/<what>.py`, not here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from percolate.core.layout import check_date
from percolate.core.settings import Settings
from workflows.cli_cost import add_cost_commands
from workflows.cli_labels import add_labels_commands
from workflows.cli_models import add_models_commands, emit
from workflows.cli_retrain import add_retrain_commands
from workflows.training import TrainingPlan

DEMO_DATE = "2026-11-20"
# the demo day: 30 calls of 20-90 s over backgrounds the models never saw (27 min of video; shorter
# calls would crowd the day with cups: 11% of the frames at 20-60 s, 5% here, about 4% on real-shaped days)
DEMO_CALLS, DEMO_SECONDS = 30, (20.0, 90.0)


def cmd_generate_day(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.io.store import open_store
    from synth import generate_day
    from workflows.progress import generation_bar

    with generation_bar(args.date, args.calls) as progress:
        summary = generate_day(open_store(settings.store_uri, settings.s3_endpoint_url), args.date,
                               calls=args.calls, seed=args.seed, backgrounds=args.backgrounds,
                               min_seconds=args.min_seconds, max_seconds=args.max_seconds, progress=progress)
    emit(args, summary, "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.io.store import open_store
    from workflows.ingest import IngestError, ingest, read_users

    try:
        result = ingest(open_store(settings.store_uri, settings.s3_endpoint_url), args.date,
                        [Path(f) for f in args.files], read_users(args.users))
    except IngestError as exc:
        raise SystemExit(str(exc)) from exc
    done = result["ingested"]
    emit(args, result,
         "\n".join(f"{r['file']} -> {r['video_key']} (user {r['user_id']}{'' if r['new'] else ', already there'})"
                   for r in done)
         + f"\n{sum(r['new'] for r in done)} files ingested, {sum(not r['new'] for r in done)} already there; "
           f"the manifest for {args.date} now has {result['manifest_calls']} calls")
    return 0


def budget_params(args: argparse.Namespace) -> dict:
    """The DAG's budget params from `--budget-usd` and `--on-over-budget`."""
    return {"budget_usd": args.budget_usd, "on_over_budget": args.on_over_budget}


def add_budget_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget-usd", type=float, default=None,
                   help="the most a date's run may cost, estimated before sampling (default: no limit)")
    p.add_argument("--on-over-budget", choices=["refuse", "degrade"], default="refuse",
                   help="over budget: fail before any Spark job, or sample at the highest of 1, 0.5, 0.25 "
                        "frames/s that fits (docs/operations.md)")


def cmd_nightly(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.launch import run_nightly
    from percolate.report import format_funnel

    summary_path = run_nightly(settings, args.date, args.prefilter_model, args.heavy_model,
                               params=budget_params(args))
    summary = json.loads(summary_path.read_text())
    emit(args, summary, format_funnel(summary))
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.backfill import (dates_between, dry_run, format_dry_run, parallel_allowed, run_backfill,
                                    say_result, to_redo)
    from workflows.launch import base_env
    from workflows.progress import bar

    dates = dates_between(args.start, args.end)
    if args.only_failed:
        dates = to_redo(settings, dates)
    if args.dry_run:
        plan = dry_run(settings, dates, args.prefilter_model) if dates else {"dates": [], "total": {}, "rates": None}
        emit(args, plan, format_dry_run(plan))
        return 0
    if not dates:
        emit(args, {"dates": []}, "nothing to do: every date of the range succeeded last time")
        return 0
    parallel, why = parallel_allowed(settings, args.max_parallel, base_env(settings))
    if why:
        print(f"percolate backfill: {why}", file=sys.stderr)
    with bar(len(dates), f"backfill {dates[0]}..{dates[-1]}", "date") as progress:
        def done(result: dict) -> None:
            progress.write(say_result(result), file=sys.stderr)
            progress.update(1)
        results = run_backfill(settings, dates, args.prefilter_model, args.heavy_model, parallel, done,
                               drift_before=args.start, params=budget_params(args))
    failed = [r["date"] for r in results if r["status"] not in ("success", "partial")]
    partial = [r["date"] for r in results if r["status"] == "partial"]
    emit(args, {"dates": results, "failed": failed, "partial": partial},
         f"{len(results) - len(failed)} of {len(results)} dates published"
         + (f"; partial: {', '.join(partial)}" if partial else "")
         + (f"; failed: {', '.join(failed)}" if failed else "")
         + (" (rerun them with --only-failed)" if failed or partial else ""))
    return 1 if failed else 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from workflows.training import train

    default = TrainingPlan()
    plan = replace(default, train_shape=replace(default.train_shape, calls=args.calls), seed=args.seed,
                   prefilter_epochs=args.prefilter_epochs, heavy_epochs=args.heavy_epochs,
                   heavy_members=args.heavy_members, prefilter_members=args.prefilter_members,
                   recolour=args.recolour)
    command = "percolate " + " ".join(args.argv)
    if args.alias:  # before two hours of training, not after
        from percolate.io.registry import open_registry
        from workflows.promotion import refuse_production_move

        refuse_production_move(open_registry(settings), args.alias)
    summary = train(settings, plan, alias=args.alias or None, ship=args.ship, command=command)
    emit(args, summary, json.dumps({k: summary[k] for k in ("versions", "alias", "prefilter", "heavy", "seconds")
                                    if k in summary}, indent=2, default=str))
    return 0


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.report import format_rows

    from workflows.query import default_engine, query_here

    rows = query_here(settings, [args.sql], args.limit, read_only=True,
                      engine=args.engine or default_engine(settings))[0]
    emit(args, {"rows": rows, "count": len(rows)}, format_rows(rows, limit=args.limit or 50))
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.evaluate import HoldoutDay, evaluate, format_result

    spec = HoldoutDay(calls=args.calls, seed=args.seed)
    # held-out days are generated: their own database and store prefix, never the production tables
    out = evaluate(settings.synthetic(), args.date, prefilter=args.prefilter_model, heavy=args.heavy_model,
                   generate=not args.no_generate, rerun=args.rerun, spec=spec)
    # recorded beside the models: `percolate models promote` compares a challenger's with production's
    from models.gates import summarize
    from percolate.io.registry import open_registry

    out["recorded_evaluation"] = open_registry(settings).record_evaluation(summarize(out))
    emit(args, out, format_result(out))
    return 0 if not args.require_targets or out["pooled"]["targets"]["all_met"] else 3


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Generate a day if missing, run the nightly DAG (with the shipped models when the
    registry has none), show the results."""
    import time

    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.io.store import open_store
    from percolate.report import format_funnel, format_rows
    from workflows.evaluate import evaluate, format_result, published_daily
    from workflows.launch import run_nightly
    from workflows.progress import say
    from workflows.training import ensure_generated

    start = time.perf_counter()
    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    ensure_generated(store, args.date, args.calls, args.seed, "holdout", DEMO_SECONDS[0], DEMO_SECONDS[1])
    shipped = ensure_production(ModelRegistry(store))
    if shipped:
        say("registered the shipped models as production: " + ", ".join(f"{r} {v}" for r, v in shipped.items()))
    summary = json.loads(run_nightly(settings, args.date).read_text())
    daily, (rows,) = published_daily(settings, [args.date], [
        f"SELECT user_id, brand, frames, calls, round(max_score, 3) AS max_score, first_seen_call_id, "
        f"first_seen_ts_ms, confirmed, heavy_version FROM user_brand_daily WHERE dt = '{args.date}' "
        f"ORDER BY confirmed DESC, frames DESC, user_id, brand LIMIT 10"])
    evaluation = evaluate(settings, [args.date], generate=False, daily=daily)
    elapsed = time.perf_counter() - start
    emit(args, {"summary": summary, "evaluation": evaluation, "user_brand_daily": rows, "elapsed_s": elapsed},
         "\n\n".join([format_funnel(summary), format_result(evaluation),
                      "First rows of user_brand_daily:\n" + format_rows(rows),
                      f"Demo finished in {elapsed / 60:.1f} min. Try: .venv/bin/percolate query "
                      f"\"SELECT * FROM pipeline_runs\""]))
    return 0


def cmd_lease_list(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    from percolate.io.lease import open_leases

    leases = open_leases(settings).all()
    lines = [f"{lease.date}  {lease.holder}  since {lease.acquired_at}  expires {lease.expires_at}"
             f"{'  (expired)' if lease.expired() else ''}  {lease.host} pid {lease.pid}" for lease in leases]
    emit(args, [asdict(lease) for lease in leases], "\n".join(lines) or "no date is being written")
    return 0


def cmd_lease_release(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.io.lease import open_leases

    released = open_leases(settings).release(args.date)
    emit(args, {"date": args.date, "released": released},
         f"released the lease of {args.date}" if released else f"{args.date} had no lease")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="percolate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")
        p.set_defaults(func=func)
        return p

    p = command("generate-day", cmd_generate_day, "Generate a day of synthetic calls with ground truth.")
    p.add_argument("--date", required=True, type=check_date)
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backgrounds", choices=["train", "holdout", "all"], default="all")
    p.add_argument("--min-seconds", type=float, default=20.0)
    p.add_argument("--max-seconds", type=float, default=180.0)

    p = command("ingest", cmd_ingest, "Copy your own stored videos into a day's layout and manifest.")
    p.add_argument("--date", required=True, type=check_date)
    p.add_argument("files", nargs="+", help="video files")
    p.add_argument("--users", required=True, help="CSV with columns file,user_id")

    p = command("nightly", cmd_nightly, "Run the nightly DAG through Airflow for one date.")
    p.add_argument("--date", required=True, type=check_date)
    p.add_argument("--prefilter-model", default="production", help="alias or version")
    p.add_argument("--heavy-model", default="production", help="alias or version")
    add_budget_flags(p)

    p = command("backfill", cmd_backfill, "Run the nightly DAG over a range of dates (the same DAG, one run "
                                          "per date), or estimate what that costs with --dry-run.")
    p.add_argument("--start", required=True, type=check_date, help="first date, YYYY-MM-DD")
    p.add_argument("--end", required=True, type=check_date, help="last date (included)")
    p.add_argument("--prefilter-model", default="production", help="alias or version")
    p.add_argument("--heavy-model", default="production", help="alias or version")
    p.add_argument("--only-failed", action="store_true", help="only the dates whose last run failed, was partial or is missing")
    p.add_argument("--max-parallel", type=int, default=1, help="dates at once (needs the shared metastore)")
    add_budget_flags(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print per date the videos, hours, frames, heavy-model frames, CPU and cost; write nothing")

    plan = TrainingPlan()
    p = command("train", cmd_train, "Train, calibrate and register the prefilter and heavy models on generated "
                                    "days (how the shipped models are made: `percolate train --ship`).")
    p.add_argument("--calls", type=int, default=plan.train_shape.calls, help="calls per training day")
    p.add_argument("--seed", type=int, default=plan.seed)
    p.add_argument("--alias", default="challenger",
                   help="alias to point at the new versions ('' for none; production only while there is none: "
                        "afterwards it moves through `percolate models promote`)")
    p.add_argument("--ship", action="store_true", help="also export them to models/shipped/ (commit that folder)")
    p.add_argument("--prefilter-epochs", type=int, default=plan.prefilter_epochs)
    p.add_argument("--heavy-epochs", type=int, default=plan.heavy_epochs)
    p.add_argument("--heavy-members", type=int, default=plan.heavy_members,
                   help="heavy models from consecutive seeds, averaged into one")
    p.add_argument("--prefilter-members", type=int, default=plan.prefilter_members,
                   help="prefilters from consecutive seeds, their maps averaged into one")
    p.add_argument("--recolour", type=float, default=None,
                   help="share of negatives both models see in other colours (default: the recipes')")

    p = command("query", cmd_query, "Run one read-only SQL statement (SELECT, WITH, SHOW, DESCRIBE, "
                "EXPLAIN) on the warehouse tables (database percolate); anything else is refused.")
    p.add_argument("sql")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--engine", choices=["duckdb", "spark"], default=None,
                   help="duckdb (under a second; the default with a shared metastore) or spark (Spark SQL; the "
                        "default on the embedded Derby metastore)")

    p = command("evaluate", cmd_evaluate,
                "Score held-out generated days end to end against their ground truth, with an HTML report.")
    p.add_argument("--date", required=True, type=check_date, action="append",
                   help="a day to evaluate (repeat for several); generated with the holdout backgrounds if missing")
    p.add_argument("--calls", type=int, default=60, help="calls per day when generating one")
    p.add_argument("--seed", type=int, default=None, help="seed when generating (default: from the date)")
    p.add_argument("--no-generate", action="store_true", help="fail instead of generating a missing day")
    p.add_argument("--rerun", action="store_true", help="run the nightly DAG again even if it ran with these models")
    p.add_argument("--prefilter-model", default="production", help="alias or version")
    p.add_argument("--heavy-model", default="production", help="alias or version")
    p.add_argument("--require-targets", action="store_true",
                   help="exit 3 unless the pooled figures meet the targets")

    p = command("demo", cmd_demo, "Generate a day, run the nightly DAG (shipped models if the registry has "
                                  "none) and show the results.")
    p.add_argument("--date", type=check_date, default=DEMO_DATE)
    p.add_argument("--calls", type=int, default=DEMO_CALLS)
    p.add_argument("--seed", type=int, default=2026)

    lease = sub.add_parser("lease", help="One writer per date: the runs' leases.")
    lease_sub = lease.add_subparsers(dest="lease_command", required=True)
    p = lease_sub.add_parser("list", help="Dates being written, by which run, until when.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lease_list)
    p = lease_sub.add_parser("release", help="Free a date whose writer died (it would expire by itself).")
    p.add_argument("--json", action="store_true")
    p.add_argument("date", type=check_date)
    p.set_defaults(func=cmd_lease_release)

    add_retrain_commands(sub)
    add_labels_commands(sub)
    add_models_commands(sub)
    add_cost_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    settings = Settings.from_env()
    try:
        return args.func(args, settings)
    except (RuntimeError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"percolate {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
