"""`percolate loop`: the whole learning loop on generated days, as one command.

A week (or `days`) of generated calls goes through the nightly DAG a day at a time; after each
night the day's feedback arrives (`percolate labels simulate`: reorder-button clicks and the
audit sample's labels, from the generator's truth); then the weekly retrain DAG runs as of the
next day, and the nightly DAG runs that day with whatever `production` is then. The result
says, per day, the audit's recall estimate beside the day's true prefilter recall, and the
retrain's decision and the versions the last run used.
"""

from __future__ import annotations

import datetime as dt
import json

from percolate.core.layout import check_date
from percolate.core.settings import Settings
from workflows.progress import say


def dates(start: str, days: int) -> list[str]:
    first = dt.date.fromisoformat(check_date(start))
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]


def true_prefilter_recall(settings: Settings, day: str) -> tuple[int, int]:
    """(frames showing a cup that passed the prefilter, frames showing a cup) of a generated day's
    published run."""
    from percolate.core.layout import PREFILTER, run_summary_path
    from percolate.io.stage import open_stage
    from percolate.io.store import open_store
    from synth import label_at, load_truth

    run_id = json.loads(run_summary_path(settings.reports_dir, day).read_text())["run_id"]
    scores = open_stage(settings, run_id).read_pandas(PREFILTER, day, columns=["call_id", "ts_ms", "passed"])
    calls = {c["call_id"]: c for c in load_truth(open_store(settings.store_uri, settings.s3_endpoint_url),
                                                   day)["calls"]}
    cup = [label_at(calls[c], t / 1000.0) is not None for c, t in zip(scores["call_id"], scores["ts_ms"])]
    return int(sum(bool(p) for p, c in zip(scores["passed"], cup) if c)), int(sum(cup))


def run_loop(settings: Settings, start: str, days: int = 7, *, calls: int = 60, min_seconds: float = 20.0,
             max_seconds: float = 180.0, seed: int = 500, weeks: int = 1, plan: dict | None = None) -> dict:
    """Generate, process and label `days` days from `start`, retrain as of the day after, and
    process that day; returns what happened (see the module's docstring)."""
    from synth import generate_day
    from percolate.io.store import open_store
    from workflows.labels import simulate
    from workflows.launch import run_nightly, run_retrain
    from workflows.progress import generation_bar
    from workflows.query import read_tables

    week = dates(start, days + 1)
    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    for i, day in enumerate(week):
        if not store.exists(f"manifests/dt={day}/manifest.csv"):
            with generation_bar(day, calls) as progress:
                generate_day(store, day, calls=calls, seed=seed + i, min_seconds=min_seconds, max_seconds=max_seconds,
                             progress=progress)
    feedback = {}
    for day in week[:-1]:
        run_nightly(settings, day)
        feedback[day] = simulate(settings, day)
        say(f"{day}: {feedback[day]['accepted']} labels arrive the next day")
    retrain = run_retrain(settings, week[-1], {"weeks": weeks, "seed": 11, "dry_run": False, "plan": plan or {}})
    run_nightly(settings, week[-1])
    runs = {r["dt"]: r for r in read_tables(settings, [
        f"SELECT dt, prefilter_version, heavy_version, audit_drawn, audit_days, audit_labelled_frames, "
        f"prefilter_recall_estimate, prefilter_recall_low, prefilter_recall_high, prefilter_recall_bound "
        f"FROM pipeline_runs WHERE dt >= '{week[0]}' AND dt <= '{week[-1]}'"])[0]}
    truth = {day: true_prefilter_recall(settings, day) for day in week}
    for i, day in enumerate(week):  # what each day's estimate rests on: the labelled days before it
        used = week[max(0, i - 7):i][-int(runs[day]["audit_days"] or 0):] if runs[day]["audit_days"] else []
        passed, cups = (sum(truth[d][k] for d in used) for k in (0, 1))
        runs[day]["true_recall_of_estimate_days"] = passed / cups if cups else None
    return {"dates": week, "feedback": feedback, "runs": runs, "retrain": retrain,
            "last_run_models": {k: runs[week[-1]][k] for k in ("prefilter_version", "heavy_version")}}


def format_loop(out: dict) -> str:
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    lines = [f"{'day':<12}{'models':>14}{'audited':>9}{'labelled':>10}{'recall est.':>13}{'95% interval':>17}"
             f"{'true':>8}"]
    for day in out["dates"]:
        r = out["runs"][day]
        interval = "-" if r["prefilter_recall_low"] is None else \
            f"{pct(r['prefilter_recall_low'])}-{pct(r['prefilter_recall_high'])}"
        lines.append(f"{day:<12}{r['prefilter_version'] + '/' + r['heavy_version']:>14}{r['audit_drawn'] or 0:>9}"
                     f"{r['audit_labelled_frames'] or 0:>10}{pct(r['prefilter_recall_estimate']):>13}{interval:>17}"
                     f"{pct(r['true_recall_of_estimate_days']):>8}")
    re = out["retrain"]
    lines += ["", f"retrain as of {out['dates'][-1]}: {'PROMOTED' if re.get('promoted') else 'not promoted'} "
                  f"({re.get('decision')}); report {re.get('report')}",
              f"the last run used prefilter {out['last_run_models']['prefilter_version']}, heavy "
              f"{out['last_run_models']['heavy_version']}"]
    return "\n".join(lines)
