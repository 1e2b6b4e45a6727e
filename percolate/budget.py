"""A nightly run's budget step: the day's cost estimated before sampling, the rate a budget
allows, and the recall expected at that rate (the `budget` task of the nightly DAG).

Inputs are all local documents, read without Spark (no JVM before the first Spark job):
the day's manifest; the summaries of the trailing successful runs (`pipeline_runs` rows kept
under `reports/dt=.../summary.json`) and their per-video outcomes in the stage area (decode
CPU, size, decode mode; the date's own earlier run tells this date's durations); the pinned
model pair's latest recorded evaluation (`recall_by_rate`). The arithmetic is
`percolate.core.costing`. The plan is kept as the run's `budget` stage document, which the
publish job records in `pipeline_runs`.
"""

from __future__ import annotations

import json

from percolate.core.costing import (OverBudgetError, choose_rate, estimate_day, expected_recall, fit_rates, usd,
                                    video_facts)
from percolate.core.layout import SAMPLE_FRAMES, VIDEOS, run_outcome_path, run_summary_path
from percolate.core.settings import Settings

HISTORY_RUNS = 7  # trailing successful runs whose metrics give the rates
BUDGET = "budget"  # the stage document holding the run's plan
VIDEO_COLUMNS = ["call_id", "status", "duration_s", "width", "height", "decode_mode", "cpu_s"]


def trailing_runs(settings: Settings, date: str, n: int = HISTORY_RUNS) -> list[dict]:
    """The run summaries of the `n` latest dates up to `date` whose last run succeeded."""
    found = []
    for folder in sorted(settings.reports_dir.glob("dt=*"), reverse=True):
        day = folder.name.removeprefix("dt=")
        if day > date or len(found) >= n:
            continue
        summary, outcome = run_summary_path(settings.reports_dir, day), run_outcome_path(settings.reports_dir, day)
        try:
            if json.loads(outcome.read_text()).get("status") == "success":
                found.append(dict(json.loads(summary.read_text()), dt=day))
        except (OSError, ValueError):
            continue  # never finished, or a summary of another layout: not history
    return found


def run_videos(settings: Settings, run: dict) -> list[dict]:
    """A run's processed videos (its stage outcomes), as `calls`-like rows; [] once removed."""
    from percolate.io.stage import open_stage

    if not run.get("run_id"):
        return []
    try:
        df = open_stage(settings, run["run_id"]).read_pandas(SAMPLE_FRAMES, run["dt"], VIDEOS, VIDEO_COLUMNS)
    except Exception:  # noqa: BLE001 - stage data of an old run may be gone: its totals still count
        return []
    fps = float(json.loads(run.get("sampler") or "{}").get("fps") or 1.0)
    df = df[df["status"] == "ok"].rename(columns={"cpu_s": "cpu_s_decode"})
    return [dict(r, dt=run["dt"], fps=fps) for r in df.to_dict("records")]


def last_good_run(settings: Settings, date: str) -> dict:
    """{run_id, dt} of the date's last run if it succeeded, else {}."""
    try:
        outcome = json.loads(run_outcome_path(settings.reports_dir, date).read_text())
    except (OSError, ValueError):
        return {}
    return {"run_id": outcome["run_id"], "dt": date} if outcome.get("status") == "success" else {}


def manifest_rows(settings: Settings, date: str) -> list[dict]:
    from percolate.io.manifest import read_manifest
    from percolate.io.store import open_store

    return read_manifest(open_store(settings.store_uri, settings.s3_endpoint_url), date)


def latest_evaluation(settings: Settings, prefilter: str, heavy: str) -> dict | None:
    """The pair's newest recorded evaluation that measured recall per rate, if any."""
    from percolate.io.registry import open_registry

    try:
        return next((e for e in open_registry(settings).evaluations(prefilter, heavy) if e.get("recall_by_rate")),
                    None)
    except Exception:  # noqa: BLE001 - an unreadable registry leaves the expectation unknown, not the run
        return None


def plan_run(settings: Settings, date: str, run_id: str, *, requested_fps: float | None, budget_usd: float | None,
             policy: str, models: dict) -> dict:
    """Estimate the day, pick its rate (raise `OverBudgetError` when nothing fits), keep the plan
    as the run's `budget` stage document and return it."""
    from percolate.io.stage import open_stage

    runs = trailing_runs(settings, date)
    sizes = {}
    for run in runs:
        try:
            sizes[run["dt"]] = sum(int(m.get("size_bytes") or 0) for m in manifest_rows(settings, run["dt"]))
        except Exception:  # noqa: BLE001 - that day's bitrate unknown: the others' is used
            pass
    videos = [v for run in runs for v in run_videos(settings, run)]
    rates = fit_rates([dict(r, size_bytes=sizes.get(r["dt"])) for r in runs], videos)
    known = {v["call_id"]: v for v in videos if v["dt"] == date}  # the date ran before: its own facts
    if not known:  # a relaunch removes the date's summary first; its last good run's data is still staged
        known = {v["call_id"]: v for v in run_videos(settings, last_good_run(settings, date))}
    facts = video_facts(manifest_rows(settings, date), known)
    fps = float(requested_fps or settings.sampler.fps)
    try:
        decision = choose_rate(lambda f: estimate_day(facts, rates, f, settings.cost_per_core_hour), fps,
                               budget_usd, policy)
    except OverBudgetError as exc:
        raise OverBudgetError(f"{date}: {exc}; nothing was sampled") from None
    evaluation = latest_evaluation(settings, models["prefilter"], models["heavy"])
    plan = {"fps": decision["fps"], "requested_fps": fps, "estimated_cost_usd": decision["estimate"]["cost_usd"],
            "budget_usd": budget_usd, "on_over_budget": policy, "status": decision["status"],
            "tried": decision["tried"], "expected_recall": expected_recall(evaluation, decision["fps"]),
            "evaluation_dates": (evaluation or {}).get("dates"), "estimate": decision["estimate"],
            "rates_from": list(rates.days)}
    open_stage(settings, run_id).write_metrics(BUDGET, date, {"run_id": run_id, **plan})
    return plan


def read_plan(stage, date: str) -> dict:
    """The run's plan (`plan_run`), or {} for a run that had no budget step."""
    try:
        return stage.read_metrics(BUDGET, date)
    except FileNotFoundError:
        return {}


def format_plan(plan: dict) -> str:
    e = plan["estimate"]
    budget = ("no budget" if plan["budget_usd"] is None
              else f"budget {usd(plan['budget_usd'])} ({plan['on_over_budget']})")
    recall = plan["expected_recall"]
    return (f"estimate: {e['videos']} videos, {e['video_seconds'] / 3600:.2f} video-hours, {e['cpu_s_total']:.0f} "
            f"CPU-s (fixed {e['fixed_cpu_s']:.0f}), {usd(plan['estimated_cost_usd'])} at {plan['fps']:g} frames/s; "
            f"{budget}: {plan['status']}; expected user-day recall "
            f"{'unknown' if recall is None else f'{recall:.3f}'}; rates from {e['rates']}")
