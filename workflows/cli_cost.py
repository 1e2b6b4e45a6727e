"""`percolate cost-model`: the talk's cost table from its inputs beside the measured one.
A thin command over `workflows.cost_model`; `workflows.cli` adds it to its parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from percolate.core.settings import Settings
from workflows.cli_models import emit


def cmd_cost_model(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.cost_model import cost_model, format_cost_model

    latest = Path(args.latest) if args.latest else settings.reports_dir / "bench" / "latest.json"
    price = settings.cost_per_core_hour if args.price is None else args.price
    out = cost_model(latest, price)
    emit(args, out, format_cost_model(out))
    return 0


def add_cost_commands(sub) -> None:
    help_text = ("The talk's five-step cost table recomputed from its inputs, beside the cost `make bench` "
                 "measured (var/reports/bench/latest.json), so the missing decode line shows.")
    p = sub.add_parser("cost-model", help=help_text, description=help_text)
    p.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")
    p.add_argument("--latest", default=None, help="the benchmark's JSON (default: var/reports/bench/latest.json)")
    p.add_argument("--price", type=float, default=None,
                   help="USD per core-hour for the measured table (default: PERCOLATE_COST_PER_CORE_HOUR); "
                        "the talk's $0.02 is always shown too")
    p.set_defaults(func=cmd_cost_model)
