"""`percolate evaluate`: held-out generated days, processed end to end, scored against truth.

A held-out day uses the holdout backgrounds (never seen in training) and its own seed.
It is generated if missing, run through the real nightly DAG (sampling, prefilter,
heavy model, user-day rule, publish) unless that was already done with the same model
versions, then scored. Several days are also pooled (user-days keyed by date).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import pandas as pd

from percolate.core.layout import (HEAVY, PREFILTER, check_date, evaluation_report_path, manifest_key,
                                   run_summary_path)
from percolate.core.settings import Settings
from percolate.io.stage import open_stage
from percolate.io.store import open_store
from workflows.progress import bar, generation_bar, say

# The business requirement (see the seed talk): user-day precision and recall, and the
# share of sampled frames the heavy model may run on.
TARGETS = {"precision": 0.99, "recall": 0.90, "pass_rate": 0.10}
DAILY_FOR_EVALUATION = "SELECT user_id, brand, confirmed FROM user_brand_daily WHERE dt = '{date}'"


@dataclass(frozen=True)
class HoldoutDay:
    """How a missing held-out day is generated: realistic call lengths and cup share."""

    calls: int = 60
    min_seconds: float = 20.0
    max_seconds: float = 180.0
    seed: int | None = None  # None: derived from the date
    cup_share: float | None = None  # share of calls showing a cup (None: the generator's realistic one)

    def seed_for(self, date: str) -> int:
        return self.seed if self.seed is not None else 100_000 + zlib.crc32(date.encode()) % 100_000


def ensure_day(settings: Settings, date: str, spec: HoldoutDay = HoldoutDay()) -> None:
    """Generate the held-out day unless it exists (its manifest is written last)."""
    from synth import generate_day

    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    if store.exists(manifest_key(date)):
        return
    with generation_bar(date, spec.calls) as progress:
        shares = {} if spec.cup_share is None else {"cup_share": spec.cup_share}
        generate_day(store, date, calls=spec.calls, seed=spec.seed_for(date), backgrounds="holdout",
                     min_seconds=spec.min_seconds, max_seconds=spec.max_seconds, progress=progress, **shares)


def ensure_processed(settings: Settings, date: str, prefilter: str = "production", heavy: str = "production",
                     rerun: bool = False) -> dict:
    """The day's run summary, running the nightly DAG unless it already ran with these models."""
    from percolate.io.registry import open_registry
    from models.shipped import resolve
    from workflows.launch import run_nightly

    registry = open_registry(settings)
    want = (resolve(registry, "prefilter", prefilter), resolve(registry, "heavy", heavy))
    path = run_summary_path(settings.reports_dir, date)
    if not rerun and path.exists():
        summary = json.loads(path.read_text())
        if (summary.get("prefilter_version"), summary.get("heavy_version")) == want:
            say(f"{date} was already processed with prefilter {want[0]} and heavy {want[1]}")
            return summary
    return json.loads(run_nightly(settings, date, want[0], want[1]).read_text())


def published_daily(settings: Settings, dates: list[str], extra: list[str] = ()) -> tuple[dict, list]:
    """The published user_brand_daily rows of each date, and the rows of the `extra`
    statements, from one Spark query process."""
    from workflows.query import run_queries

    results = run_queries(settings, [DAILY_FOR_EVALUATION.format(date=check_date(d)) for d in dates] + list(extra))
    return dict(zip(dates, results)), results[len(dates):]


def load_day(settings: Settings, date: str, run_id: str, daily_rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The day's frame table (see scoring.frame_table) from run `run_id`'s stage data, and its
    user_brand_daily rows."""
    from workflows.scoring import frame_table
    from synth import load_truth

    truth = load_truth(open_store(settings.store_uri, settings.s3_endpoint_url), date)
    stage = open_stage(settings, run_id)
    scores = stage.read_pandas(PREFILTER, date)  # every sampled frame (the frames stage keeps only some JPEGs)
    table = frame_table(scores[["call_id", "user_id", "frame_index", "ts_ms"]], scores, stage.read_pandas(HEAVY, date),
                        truth)
    return table, pd.DataFrame(daily_rows, columns=["user_id", "brand", "confirmed"])


def score(table: pd.DataFrame, daily: pd.DataFrame, class_names: list[str], summary: dict,
          prefilter_flops, heavy_flops) -> dict:
    """Every figure of one day (or of pooled days) as a JSON-able dict."""
    from workflows.scoring import (flops_per_frame, measured_prefilter_flops, meets_targets, score_frames,
                                      score_user_days)

    frame_level = score_frames(table, class_names)
    result = {
        "frame_level": frame_level,
        "user_day": score_user_days(daily, table, class_names),
        "flops_per_sampled_frame": flops_per_frame(measured_prefilter_flops(table, prefilter_flops), heavy_flops,
                                                   frame_level["heavy"]["run_rate"], prefilter_max=prefilter_flops),
        "cpu_s": {s: round(float(summary.get(f"cpu_s_{s}") or 0.0), 1)
                  for s in ("sample_frames", "prefilter", "heavy", "publish", "total")},
        "video_hours": round(float(summary.get("video_seconds") or 0.0) / 3600, 3),
        "estimated_cost_usd": summary.get("estimated_cost_usd"),
    }
    result["targets"] = meets_targets(result, TARGETS)
    return result


def sampled_fps(summary: dict) -> float:
    """The rate a day's run sampled at (its provenance)."""
    return float(json.loads(summary.get("sampler") or "{}").get("fps") or 1.0)


def rate_figures(table: pd.DataFrame, classes: list[str], heavy_spec: dict, rates: set[float]) -> dict:
    """User-day precision and recall per ladder rate, from the frames sampled at the days' one
    rate ({} when the days ran at different rates)."""
    from workflows.rate_recall import recall_by_rate
    from workflows.scoring import true_user_brands

    if len(rates) != 1:
        return {}
    return recall_by_rate(table, true_user_brands(table), heavy_spec["aggregation"], classes, next(iter(rates)))


def _pool(days: list[dict]) -> dict:
    """Sum the run summaries of several days (CPU, video, cost)."""
    keys = [f"cpu_s_{s}" for s in ("sample_frames", "prefilter", "heavy", "publish", "total")]
    keys += ["video_seconds", "estimated_cost_usd"]
    return {k: sum(float(d["summary"].get(k) or 0.0) for d in days) for k in keys}


def evaluate(settings: Settings, dates: list[str], *, prefilter: str = "production", heavy: str = "production",
             generate: bool = True, rerun: bool = False, spec: HoldoutDay = HoldoutDay(),
             report: bool = True, daily: dict[str, list[dict]] | None = None) -> dict:
    """Generate (if asked), process and score each date; pool them; write the HTML report.

    `daily`: the dates' published user_brand_daily rows when the caller already has them.
    """
    from percolate.io.registry import open_registry
    from models.shipped import resolve

    registry = open_registry(settings)
    dates = [check_date(d) for d in dates]
    prefilter, heavy = resolve(registry, "prefilter", prefilter), resolve(registry, "heavy", heavy)
    pf_spec, hv_spec = registry.spec("prefilter", prefilter), registry.spec("heavy", heavy)
    classes = list(hv_spec["class_names"])
    flops = (pf_spec.get("flops_per_frame"), hv_spec.get("flops_per_frame"))
    summaries = {}
    with bar(len(dates), "evaluating held-out days", "day") as progress:
        for date in dates:
            progress.set_postfix_str(date)
            if generate:
                ensure_day(settings, date, spec)
            summaries[date] = ensure_processed(settings, date, prefilter, heavy, rerun)
            progress.update(1)
    if daily is None:
        daily, _ = published_daily(settings, dates)
    days = []
    for date in dates:
        table, rows = load_day(settings, date, summaries[date]["run_id"], daily[date])
        days.append({"date": date, "summary": summaries[date], "table": table, "daily": rows,
                     "result": score(table, rows, classes, summaries[date], *flops)})
    pooled_table = pd.concat([d["table"].assign(user_id=d["date"] + "/" + d["table"]["user_id"].astype(str))
                              for d in days], ignore_index=True)
    pooled_daily = pd.concat([d["daily"].assign(user_id=d["date"] + "/" + d["daily"]["user_id"].astype(str))
                              for d in days], ignore_index=True)
    pooled = score(pooled_table, pooled_daily, classes, _pool(days), *flops)
    rates = {sampled_fps(d["summary"]) for d in days}
    for d in days:  # what a lower sampling rate would have cost in recall (workflows.rate_recall)
        d["result"]["recall_by_rate"] = rate_figures(d["table"], classes, hv_spec, rates)
    pooled["recall_by_rate"] = rate_figures(pooled_table, classes, hv_spec, rates)
    out = {
        "dates": list(dates),
        "models": {"prefilter": {k: pf_spec.get(k) for k in ("version", "threshold", "flops_per_frame")},
                   "heavy": {k: hv_spec.get(k) for k in ("version", "threshold", "aggregation", "flops_per_frame")}},
        "targets": TARGETS,
        "days": {d["date"]: d["result"] for d in days},
        "pooled": pooled,
    }
    if report:
        from workflows.eval_report import write_report

        path = evaluation_report_path(settings.reports_dir, dates)
        write_report(path, out, days, pooled_table, pooled_daily, pf_spec, hv_spec)
        (path.with_suffix(".json")).write_text(json.dumps(out, indent=2, default=str))
        out["report"] = str(path)
    return out


def format_result(out: dict) -> str:
    """The figures as aligned text."""
    from workflows.scoring import prefilter_max_note

    pct = lambda v: "  n/a" if v is None else f"{v:6.1%}"  # noqa: E731
    lines = [f"Held-out evaluation: prefilter {out['models']['prefilter']['version']}, heavy "
             f"{out['models']['heavy']['version']} (rule {out['models']['heavy']['aggregation']})", ""]
    header = f"  {'day':<12}{'user-days':>10}{'precision':>11}{'recall':>9}{'pass rate':>11}{'heavy runs':>12}" \
             f"{'pf recall':>11}{'cascade P':>11}{'cascade R':>11}{'CPU s':>8}{'targets':>9}"
    lines += [header]
    rows = list(out["days"].items()) + [("pooled", out["pooled"])]
    for name, r in rows:
        u, f = r["user_day"], r["frame_level"]
        lines.append(f"  {name:<12}{u['true_user_brands']:>10}{pct(u['precision']):>11}{pct(u['recall']):>9}"
                     f"{pct(f['prefilter']['pass_rate']):>11}{pct(f['heavy']['run_rate']):>12}"
                     f"{pct(f['prefilter']['recall']):>11}"
                     f"{pct(f['cascade']['precision']):>11}{pct(f['cascade']['recall']):>11}"
                     f"{r['cpu_s']['total']:>8.0f}{'met' if r['targets']['all_met'] else 'MISSED':>9}")
    p = out["pooled"]
    fl = p["flops_per_sampled_frame"]
    lines += ["", "pass rate: sampled frames passing the prefilter; heavy runs: those the heavy model ran on "
                  "(the rest reused its output for an unchanged input in the same call)",
              "", "Per brand (pooled user-days): " + ", ".join(
        f"{b} P {pct(v['precision']).strip()} R {pct(v['recall']).strip()} ({v['true']})"
        for b, v in p["user_day"]["per_brand"].items())]
    h = p["frame_level"]["heavy"]
    lines.append(f"Heavy model on cup frames it saw: brand accuracy {pct(h['brand_accuracy_on_cup_frames']).strip()} "
                 f"(chance {pct(h['chance_accuracy']).strip()}); frame precision {pct(h['precision']).strip()}, "
                 f"recall {pct(h['recall']).strip()}")
    if fl.get("cascade"):
        lines.append(f"FLOPs per sampled frame: cascade {fl['cascade'] / 1e6:.1f} M (prefilter "
                     f"{fl['prefilter'] / 1e6:.1f} M{prefilter_max_note(fl)} + heavy on the frames it runs on) "
                     f"vs heavy alone {fl['heavy_alone'] / 1e6:.1f} M: {fl['saving']}x less")
    by_bg = p["frame_level"]["prefilter"]["negatives_passed_by_background"]
    if by_bg:
        lines.append("Frames without a cup that pass the prefilter, by background: " + ", ".join(
            f"{b['background']} {b['passed']}/{b['frames']} ({pct(b['pass_rate']).strip()})" for b in by_bg))
    cpu = p["cpu_s"]
    lines.append("CPU seconds (all days): " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
                 + f"; {p['video_hours']:.2f} h of video, ${float(p['estimated_cost_usd'] or 0):.4f}")
    if p.get("recall_by_rate"):
        from workflows.rate_recall import format_rates

        lines.append(format_rates(p["recall_by_rate"]))
    t = p["targets"]
    lines.append("Targets (pooled): " + ", ".join(
        f"{k} {v['value']} {v['target']} {'met' if v['met'] else 'MISSED'}" for k, v in t.items() if k != "all_met"))
    if out.get("report"):
        lines.append(f"Report: {out['report']}")
    return "\n".join(lines)
