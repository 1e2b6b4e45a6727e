"""`percolate retrain` (the weekly retrain DAG for a date) and `percolate loop` (the whole
learning loop on generated days). Thin commands over `workflows.retrain` and `workflows.loop`;
`workflows.cli` adds them to its parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from percolate.core.layout import check_date
from percolate.core.settings import Settings
from workflows.cli_models import emit


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from workflows.launch import run_retrain
    from percolate.core.layout import retrain_result_path
    from workflows.retrain import format_retrain, plan_from_mapping, retrain

    plan = json.loads(Path(args.plan_file).read_text()) if args.plan_file else json.loads(args.plan_json or "{}")
    if not args.here:  # through Airflow, as the schedule runs it
        out = run_retrain(settings, args.date, {"weeks": args.weeks, "seed": args.seed, "dry_run": args.dry_run,
                                                "plan": plan})
    else:  # the DAG's task
        out = retrain(settings, args.date, replace(plan_from_mapping(plan), weeks=args.weeks, seed=args.seed),
                      dry_run=args.dry_run)
        path = retrain_result_path(settings.reports_dir, args.date)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, default=str, indent=2))
    emit(args, out, format_retrain(out))
    return 0


def cmd_loop(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.loop import format_loop, run_loop

    plan = json.loads(Path(args.plan_file).read_text()) if args.plan_file else {}
    out = run_loop(settings, args.start, args.days, calls=args.calls, min_seconds=args.min_seconds,
                   max_seconds=args.max_seconds, seed=args.seed, weeks=args.weeks, plan=plan)
    emit(args, out, format_loop(out))
    return 0


def add_retrain_commands(sub) -> None:
    p = sub.add_parser("retrain", help="Run the weekly retrain DAG for a date: train a challenger on the labels "
                                       "known by then, evaluate it against production, promote through the gates.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--date", required=True, type=check_date, help="the date it runs as of (labels known by then)")
    p.add_argument("--weeks", type=int, default=4, help="weeks of labels (default 4)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--dry-run", action="store_true", help="check the training set only")
    p.add_argument("--plan-file", default=None, help="JSON overrides of the retrain plan (e.g. {\"preset\": \"tiny\"})")
    p.add_argument("--plan-json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--here", action="store_true", help=argparse.SUPPRESS)  # the DAG's task: in this process
    p.set_defaults(func=cmd_retrain)
    p = sub.add_parser("loop", help="The whole learning loop on generated days: a week of nightly runs, each "
                                    "day's simulated feedback, a weekly retrain, the next nightly run.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--start", required=True, type=check_date)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--calls", type=int, default=60, help="calls a day (default 60)")
    p.add_argument("--min-seconds", type=float, default=20.0)
    p.add_argument("--max-seconds", type=float, default=180.0)
    p.add_argument("--seed", type=int, default=500)
    p.add_argument("--weeks", type=int, default=1, help="weeks of labels the retrain reads (default 1)")
    p.add_argument("--plan-file", default=None, help="JSON overrides of the retrain plan")
    p.set_defaults(func=cmd_loop)
