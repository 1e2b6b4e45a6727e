"""The `percolate` command line. Figures go to stdout (one JSON document with --json);
progress and logs go to stderr."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from percolate.config import Settings
from percolate.layout import check_date
from percolate.sql import run_queries, run_query
from percolate.training import TrainingPlan

DEMO_DATE = "2026-11-20"


def emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    if args.json:
        print(json.dumps(payload, default=str, sort_keys=True))
    else:
        print(text)


def cmd_generate_day(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.storage import open_store
    from percolate.synth import generate_day

    summary = generate_day(open_store(settings.store_uri, settings.s3_endpoint_url), args.date,
                           calls=args.calls, seed=args.seed, backgrounds=args.backgrounds,
                           min_seconds=args.min_seconds, max_seconds=args.max_seconds)
    emit(args, summary, "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


def _call_id_for(path: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "call"
    call_id, n = base, 1
    while call_id in taken:
        n += 1
        call_id = f"{base}-{n}"
    taken.add(call_id)
    return call_id


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    import csv

    from percolate.layout import video_key
    from percolate.manifest import read_manifest, write_manifest
    from percolate.storage import open_store

    with open(args.users, newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"file", "user_id"} <= set(reader.fieldnames or []):
            raise SystemExit(f"{args.users}: want columns file,user_id; has {reader.fieldnames}")
        users = {row["file"].strip(): row["user_id"].strip() for row in reader}
    files = [Path(f) for f in args.files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)}")

    def user_of(path: Path) -> str | None:
        return users.get(str(path)) or users.get(path.name) or users.get(str(path.resolve()))

    unknown = [str(f) for f in files if not user_of(f)]
    if unknown:
        raise SystemExit(f"{args.users} gives no user_id for: {', '.join(unknown)}")
    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    try:
        existing = {r["call_id"]: r for r in read_manifest(store, args.date)}
    except ValueError:
        existing = {}
    taken, ingested = set(existing), []
    for path in files:
        call_id = _call_id_for(path, taken)
        key = video_key(args.date, call_id, path.suffix or ".mp4")
        store.put_file(key, path)
        row = {"call_id": call_id, "user_id": user_of(path), "video_key": key, "size_bytes": path.stat().st_size}
        existing[call_id] = row
        ingested.append(dict(row, file=str(path)))
    write_manifest(store, args.date, list(existing.values()))
    emit(args, {"date": args.date, "ingested": ingested, "manifest_calls": len(existing)},
         "\n".join(f"{r['file']} -> {r['video_key']} (user {r['user_id']})" for r in ingested)
         + f"\n{len(ingested)} files ingested; the manifest for {args.date} now has {len(existing)} calls")
    return 0


def cmd_nightly(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.orchestration import run_nightly
    from percolate.report import format_funnel

    summary_path = run_nightly(settings, args.date, args.prefilter_model, args.heavy_model)
    summary = json.loads(summary_path.read_text())
    emit(args, summary, format_funnel(summary))
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.training import train

    plan = TrainingPlan(calls_per_day=args.calls, seed=args.seed,
                        prefilter_epochs=args.prefilter_epochs, heavy_epochs=args.heavy_epochs)
    summary = train(settings, plan, alias=args.alias)
    emit(args, summary, json.dumps(summary, indent=2, default=str))
    return 0


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.report import format_rows

    from percolate.sql import query_here

    rows = query_here(settings, [args.sql], args.limit)[0]
    emit(args, {"rows": rows, "count": len(rows)}, format_rows(rows, limit=args.limit or 50))
    return 0


DAILY_FOR_EVALUATION = "SELECT user_id, brand, confirmed FROM user_brand_daily WHERE dt = '{date}'"


def evaluate_day(settings: Settings, date: str, daily_rows: list[dict] | None = None) -> dict:
    """Frame-level and user-day figures of a processed generated day against its truth."""
    import pandas as pd

    from percolate.evaluation import score_frames, score_user_days
    from percolate.layout import stage_path
    from percolate.storage import open_store
    from percolate.synth import load_truth

    truth = load_truth(open_store(settings.store_uri, settings.s3_endpoint_url), date)
    stage = lambda s: stage_path(settings.stage_dir, s, date)  # noqa: E731
    frames = pd.read_parquet(f"{stage('sample_frames')}/frames",
                             columns=["call_id", "user_id", "frame_index", "ts_ms"])
    scores = pd.read_parquet(stage("prefilter"))
    predictions = pd.read_parquet(stage("heavy"))
    if daily_rows is None:
        daily_rows = run_query(settings, DAILY_FOR_EVALUATION.format(date=check_date(date)))
    daily = pd.DataFrame(daily_rows, columns=["user_id", "brand", "confirmed"])
    return {"date": date, "frame_level": score_frames(frames, scores, predictions, truth),
            "user_day": score_user_days(daily, truth, frames)}


def format_evaluation(result: dict) -> str:
    f, u = result["frame_level"], result["user_day"]
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    return "\n".join([
        f"Held-out evaluation for {result['date']} ({f['frames']} sampled frames, {f['frames_with_cup']} with a cup)",
        f"  prefilter: pass rate {pct(f['prefilter']['pass_rate'])}, recall {pct(f['prefilter']['recall'])}",
        f"  heavy model on the {f['heavy']['cup_frames_seen']} cup frames it saw: brand accuracy "
        f"{pct(f['heavy']['brand_accuracy_on_cup_frames'])} (chance {pct(f['heavy']['chance_accuracy'])})",
        f"  cascade frames: precision {pct(f['cascade']['precision'])}, recall {pct(f['cascade']['recall'])} "
        f"({f['cascade']['detections']} detections; chance precision ~{pct(f['cascade']['chance_precision'])})",
        f"  user-day: precision {pct(u['precision'])}, recall {pct(u['recall'])} "
        f"({u['predicted_user_brands']} predicted, {u['true_user_brands']} true user-brands)",
    ])


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    result = evaluate_day(settings, args.date)
    emit(args, result, format_evaluation(result))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Generate a day if missing, train if no models, run the nightly DAG, show the results."""
    import time

    from models.registry import ModelRegistry
    from percolate.orchestration import run_nightly
    from percolate.report import format_funnel, format_rows
    from percolate.storage import open_store
    from percolate.training import ensure_generated, log, train

    start = time.perf_counter()
    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    ensure_generated(store, args.date, args.calls, args.seed, "holdout", 20.0, 90.0)
    registry = ModelRegistry(store)
    aliases = registry.aliases()
    if not all(aliases.get(role, {}).get("production") for role in ("prefilter", "heavy")):
        log("no production models registered: training first versions")
        train(settings, TrainingPlan())
    summary = json.loads(run_nightly(settings, args.date).read_text())
    daily, first_rows = run_queries(settings, [
        DAILY_FOR_EVALUATION.format(date=args.date),
        f"SELECT user_id, brand, frames, calls, round(max_score, 3) AS max_score, first_seen_call_id, "
        f"first_seen_ts_ms, confirmed, heavy_version FROM user_brand_daily WHERE dt = '{args.date}' "
        f"ORDER BY confirmed DESC, frames DESC, user_id, brand LIMIT 10"])
    evaluation = evaluate_day(settings, args.date, daily)
    rows = first_rows
    elapsed = time.perf_counter() - start
    emit(args, {"summary": summary, "evaluation": evaluation, "user_brand_daily": rows, "elapsed_s": elapsed},
         "\n\n".join([format_funnel(summary), format_evaluation(evaluation),
                      "First rows of user_brand_daily:\n" + format_rows(rows),
                      f"Demo finished in {elapsed / 60:.1f} min. Try: .venv/bin/percolate query "
                      f"\"SELECT * FROM pipeline_runs\""]))
    return 0


def cmd_models_list(args: argparse.Namespace, settings: Settings) -> int:
    from models.registry import ModelRegistry
    from percolate.storage import open_store

    registry = ModelRegistry(open_store(settings.store_uri, settings.s3_endpoint_url))
    models = {role: registry.list(role) for role in ("prefilter", "heavy")}
    text = "\n".join(f"{role} {m['version']} threshold={m.get('threshold')} aliases={m.get('aliases', [])}"
                     for role, ms in models.items() for m in ms) or "(no models registered)"
    emit(args, models, text)
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

    p = command("train", cmd_train, "Train and register the prefilter and heavy models on generated days.")
    p.add_argument("--calls", type=int, default=TrainingPlan.calls_per_day, help="calls per generated day")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--alias", default="production")
    p.add_argument("--prefilter-epochs", type=int, default=None)
    p.add_argument("--heavy-epochs", type=int, default=None)

    p = command("query", cmd_query, "Run Spark SQL on the warehouse tables (database percolate).")
    p.add_argument("sql")
    p.add_argument("--limit", type=int, default=None)

    p = command("evaluate", cmd_evaluate, "Score a processed generated day against its ground truth.")
    p.add_argument("--date", required=True, type=check_date)

    p = command("demo", cmd_demo, "Generate, train if needed, run the nightly DAG and show results.")
    p.add_argument("--date", type=check_date, default=DEMO_DATE)
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--seed", type=int, default=2026)

    models = sub.add_parser("models", help="The model registry.")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    p = models_sub.add_parser("list", help="List registered versions and aliases.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        return args.func(args, settings)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"percolate {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
