"""`percolate labels ...`: people's labels (import a file, simulate a generated day's feedback,
export a day's audit sample for labelling). Thin commands over `workflows.labels`;
`workflows.cli` adds them to its parser."""

from __future__ import annotations

import argparse
import datetime as dt

from percolate.core.layout import check_date
from percolate.core.settings import Settings
from workflows.cli_models import emit


def cmd_labels_import(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.labels import format_import, import_file

    date = args.date or dt.datetime.now(dt.timezone.utc).date().isoformat()
    out = import_file(settings, args.file, date, args.source, args.batch)
    emit(args, out, format_import(out))
    return 0


def cmd_labels_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.labels import format_import, simulate

    out = simulate(settings, args.date, args.seed, args.corrupt)
    emit(args, out, f"{out['clicks']} simulated clicks and {out['audited']} audit labels; " + format_import(out))
    return 0


def cmd_labels_export(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.labels import export_audit

    out = export_audit(settings, args.date, args.out or f"audit-{args.date}")
    emit(args, out, f"{out['frames']} audit frames of {out['date']}: images under {out['csv'].rsplit('/', 1)[0]}"
                    f"/frames, sheet {out['csv']}; fill in `brand` (a class, or none) and run `percolate labels "
                    f"import {out['csv']} --source audit`")
    return 0


def add_labels_commands(sub) -> None:
    labels = sub.add_parser("labels", help="People's labels: the reorder button, audits, imported files.")
    labels_sub = labels.add_subparsers(dest="labels_command", required=True)
    p = labels_sub.add_parser("import", help="Load a CSV or Parquet file of labels as one batch (bad rows are "
                                             "quarantined with a reason).",
                              description="Columns: user_id, day, brand, verdict (confirmed|rejected); optional "
                                          "call_id + frame_index (a frame's label; brand `none`: no brand in "
                                          "view), source, known_at. Rows are checked against the warehouse (known "
                                          "brands, user-days and frames, no duplicates, nothing from the future) "
                                          "and the labels suite.")
    p.add_argument("--json", action="store_true")
    p.add_argument("file")
    p.add_argument("--date", type=check_date, default=None, help="the date the labels arrived (default: today)")
    p.add_argument("--source", default="import", choices=["import", "audit", "reorder_button"],
                   help="for rows that name none")
    p.add_argument("--batch", default=None, help="batch name (default: import-<file hash>; re-importing replaces)")
    p.set_defaults(func=cmd_labels_import)
    p = labels_sub.add_parser("simulate", help="A generated, published day's feedback from its ground truth: "
                                               "reorder-button clicks and the audit sample's labels, imported as "
                                               "arriving the next day.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--date", required=True, type=check_date)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corrupt", type=float, default=0.0, metavar="SHARE",
                   help="give this share of the labels a wrong brand (to see the retrain's gates refuse them)")
    p.set_defaults(func=cmd_labels_simulate)
    p = labels_sub.add_parser("export", help="Write a published day's audit sample for people to label: a JPEG "
                                             "per frame and a CSV to fill in and import.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--date", required=True, type=check_date)
    p.add_argument("--out", default=None, help="folder (default: ./audit-<date>)")
    p.set_defaults(func=cmd_labels_export)
