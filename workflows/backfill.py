"""Re-running history: the nightly DAG over a range of dates, and what that would cost.

`percolate backfill` runs the same DAG the schedule runs, one DAG run per date, so a date's
rows equal a nightly run's with the same models and settings. Each date's outcome (success
or failed, with the run id) is kept in `reports/dt=<date>/outcome.json`, which is how
`--only-failed` finds the dates to redo. A dry run estimates, per date, the videos and their
hours, the sampled frames, the heavy model's frames and the CPU time and cost, from the
day's manifest and the rates of the last published days; before any day is published, from
the videos' headers and the prefilter's calibrated pass rate (CPU and cost then stay unknown).
It writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

from percolate.core.layout import check_date, run_outcome_path
from percolate.core.settings import Settings

HISTORY_DAYS = 7  # published days whose rates the estimate uses


def dates_between(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(check_date(start)), dt.date.fromisoformat(check_date(end))
    if last < first:
        raise ValueError(f"--end {end} is before --start {start}")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def last_outcome(settings: Settings, date: str) -> dict | None:
    path = run_outcome_path(settings.reports_dir, date)
    return json.loads(path.read_text()) if path.exists() else None


def to_redo(settings: Settings, dates: list[str]) -> list[str]:
    """The dates whose last run failed or that never ran (`--only-failed`)."""
    return [d for d in dates if (last_outcome(settings, d) or {}).get("status") != "success"]


def parallel_allowed(settings: Settings, wanted: int, env: dict) -> tuple[int, str | None]:
    """How many dates may run at once here, and why fewer than `wanted` if so."""
    if wanted <= 1:
        return 1, None
    if not settings.metastore_url:
        return 1, ("the embedded Derby metastore takes one Spark application at a time: running one date at a "
                   "time (set PERCOLATE_METASTORE_URL to a shared metastore for --max-parallel)")
    if "sqlite" in env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite"):
        return 1, ("Airflow's SQLite metadata takes one DAG run at a time: running one date at a time "
                   "(set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to PostgreSQL for --max-parallel)")
    return wanted, None


def pinned_models(settings: Settings, prefilter_model: str, heavy_model: str) -> tuple[str, str]:
    """The versions the aliases name now (registering the shipped models as `production` in an
    empty registry, as a nightly run would)."""
    from models.shipped import resolve
    from percolate.io.registry import open_registry

    registry = open_registry(settings)
    return resolve(registry, "prefilter", prefilter_model), resolve(registry, "heavy", heavy_model)


def run_backfill(settings: Settings, dates: list[str], prefilter_model: str, heavy_model: str,
                 max_parallel: int = 1, on_done=None, drift_before: str | None = None,
                 params: dict | None = None) -> list[dict]:
    """Run the nightly DAG for each date (up to `max_parallel` at once); one result per date,
    in date order. `on_done(result)` is called as each date finishes.

    Aliases (`production`) are resolved to versions once, here, before any date runs: every
    date of a backfill uses the same models, even if an alias moves while it runs (and dates
    started together never race to register the shipped models). Every date's drift check
    compares with the same published days, those before `drift_before` (default: the first
    date), so no date's result depends on which others ran first."""
    drift_before = drift_before or min(dates)
    from workflows.launch import run_nightly

    prefilter_model, heavy_model = pinned_models(settings, prefilter_model, heavy_model)

    def one(date: str) -> dict:
        try:
            summary = json.loads(run_nightly(settings, date, prefilter_model, heavy_model, progress=False,
                                             drift_before=drift_before, params=params).read_text())
            return {"date": date, "status": summary.get("status") or "success", "run_id": summary["run_id"],
                    "prefilter_version": summary.get("prefilter_version"),
                    "heavy_version": summary.get("heavy_version"),
                    "videos": summary["videos"], "user_brand_detections": summary["user_brand_detections"],
                    "cpu_s_total": summary["cpu_s_total"], "estimated_cost_usd": summary["estimated_cost_usd"]}
        except Exception as exc:  # noqa: BLE001 - one date's failure must not stop the others
            return {"date": date, "status": "failed", "error": str(exc).splitlines()[0][:500]}

    results = {}
    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        for future in as_completed([pool.submit(one, d) for d in dates]):
            result = future.result()
            results[result["date"]] = result
            if on_done:
                on_done(result)
    return [results[d] for d in dates]


# ---- the dry run --------------------------------------------------------------------------------

def history_rates(history: list[dict], bytes_by_date: dict[str, int]) -> dict | None:
    """Rates of the last published days: sampled frames, prefilter passes, heavy runs and CPU
    per video-second, and video-seconds per stored byte; None without history."""
    runs = [r for r in history if r.get("video_seconds")]
    if not runs:
        return None
    seconds = sum(r["video_seconds"] for r in runs)
    sampled = sum(r["sampled_frames"] for r in runs)
    passed = sum(r["prefilter_passed"] for r in runs)
    stored = sum(bytes_by_date.get(r["dt"], 0) for r in runs)
    return {
        "days": [r["dt"] for r in runs],
        "frames_per_video_s": sampled / seconds,
        "prefilter_pass_rate": passed / sampled if sampled else 0.0,
        "heavy_runs_per_pass": sum(r["heavy_model_runs"] for r in runs) / passed if passed else 0.0,
        "cpu_s_per_video_s": sum(r["cpu_s_total"] for r in runs) / seconds,
        "video_s_per_byte": seconds / stored if stored else None,
    }


def estimate_day(date: str, manifest: list[dict], known_seconds: dict[str, float], rates: dict | None,
                 fps: float, cost_per_core_hour: float, probed_s_per_byte: float | None = None,
                 calibrated_pass_rate: float | None = None) -> dict:
    """The dry run's line for one date. Durations: from the `calls` table where the date ran
    before (or read from the videos' headers), else from the stored size at the bitrate of the
    last published days (or of the headers read). Without published days, heavy-model frames
    come from the production prefilter's calibrated pass rate, and CPU and cost stay unknown."""
    seconds, estimated = 0.0, 0
    per_byte = rates["video_s_per_byte"] if rates and rates["video_s_per_byte"] else probed_s_per_byte
    for row in manifest:
        if row["call_id"] in known_seconds:
            seconds += known_seconds[row["call_id"]]
        elif per_byte:
            seconds += int(row["size_bytes"] or 0) * per_byte
            estimated += 1
        else:
            return {"date": date, "videos": len(manifest), "video_hours": None,
                    "note": "no published day to estimate durations from"}
    frames = seconds * (rates["frames_per_video_s"] if rates else fps)
    out = {"date": date, "videos": len(manifest), "video_hours": round(seconds / 3600, 3),
           "hours_estimated_for": estimated, "sampled_frames": round(frames)}
    if rates:
        passed = frames * rates["prefilter_pass_rate"]
        cpu_s = seconds * rates["cpu_s_per_video_s"]
        out |= {"heavy_model_frames": round(passed * rates["heavy_runs_per_pass"]),
                "cpu_hours": round(cpu_s / 3600, 4), "cost_usd": round(cpu_s / 3600 * cost_per_core_hour, 6)}
    elif calibrated_pass_rate is not None:
        out["heavy_model_frames"] = round(frames * calibrated_pass_rate)
    return out


PROBE_PER_DATE = 40  # videos whose headers a dry run without history reads, per date


def probe_day(store, manifest: list[dict]) -> tuple[dict[str, float], float | None]:
    """Durations read from the headers of up to PROBE_PER_DATE videos (isolated, nothing
    decoded), and the seconds per stored byte they show, for the rest."""
    from contextlib import ExitStack

    from percolate.video.durations import probe_seconds

    sample = manifest[:PROBE_PER_DATE]
    with ExitStack() as stack:
        paths = [stack.enter_context(store.local_copy(row["video_key"])) for row in sample]
        seconds = probe_seconds(paths)
    known = {row["call_id"]: s for row, s in zip(sample, seconds) if s is not None}
    sized = [(s, int(row["size_bytes"] or 0)) for row, s in zip(sample, seconds) if s is not None]
    stored = sum(b for _, b in sized)
    return known, (sum(s for s, _ in sized) / stored if stored else None)


def calibrated_pass_rate(settings: Settings, prefilter_model: str = "production") -> float | None:
    """The prefilter's pass rate on its calibration days (the spec's metrics), if known."""
    from models.shipped import read_shipped
    from percolate.io.registry import open_registry

    try:
        registry = open_registry(settings)
        if prefilter_model == "production" and not registry.aliases().get("prefilter", {}).get("production"):
            spec = read_shipped("prefilter")[0]  # what the run would register: read, not registered
        else:
            spec = registry.spec("prefilter", registry.resolve("prefilter", prefilter_model))
        rate = spec.get("metrics", {}).get("calib_pass_rate")
        return float(rate) if rate is not None else None
    except Exception:  # noqa: BLE001 - no registry or alias yet: the estimate goes without it
        return None


def dry_run(settings: Settings, dates: list[str], prefilter_model: str = "production") -> dict:
    """Per date and in total: videos, hours, sampled frames, heavy-model frames, CPU, cost."""
    from percolate.core.layout import manifest_key
    from percolate.io.manifest import ManifestError, read_manifest
    from percolate.io.store import open_store
    from workflows.query import run_queries

    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    history, calls = run_queries(settings, [
        f"SELECT dt, video_seconds, sampled_frames, prefilter_passed, heavy_model_runs, cpu_s_total "
        f"FROM pipeline_runs ORDER BY dt DESC LIMIT {HISTORY_DAYS}",
        f"SELECT dt, call_id, duration_s FROM calls WHERE dt BETWEEN '{dates[0]}' AND '{dates[-1]}' "
        f"AND duration_s IS NOT NULL"])
    bytes_by_date = {}
    for r in history:
        try:
            bytes_by_date[r["dt"]] = sum(int(m["size_bytes"] or 0) for m in read_manifest(store, r["dt"]))
        except ManifestError:
            pass  # that day's bitrate is not known: the others' is used
    rates = history_rates(history, bytes_by_date)
    pass_rate = None if rates else calibrated_pass_rate(settings, prefilter_model)
    known: dict[str, dict[str, float]] = {}
    for r in calls:
        known.setdefault(r["dt"], {})[r["call_id"]] = float(r["duration_s"])
    days = []
    for date in dates:
        if not store.exists(manifest_key(date)):
            days.append({"date": date, "videos": 0, "note": "no manifest: nothing to process"})
            continue
        try:
            manifest = read_manifest(store, date)
        except ManifestError as exc:  # the run would fail in check_inputs: say so now
            days.append({"date": date, "videos": 0, "note": f"unusable manifest: {exc}"})
            continue
        seen, per_byte = known.get(date, {}), None
        if rates is None and len(seen) < len(manifest):  # no bitrate from history: read headers
            probed, per_byte = probe_day(store, [m for m in manifest if m["call_id"] not in seen])
            seen = {**probed, **seen}
        days.append(estimate_day(date, manifest, seen, rates, settings.sampler.fps, settings.cost_per_core_hour,
                                 per_byte, pass_rate))
    return {"dates": days, "total": range_total(days), "rates": rates, "calibrated_pass_rate": pass_rate}


def range_total(days: list[dict]) -> dict:
    """The dry run's total line: a figure is known only where every date's is (else None, "-")."""
    keys = ("videos", "video_hours", "sampled_frames", "heavy_model_frames", "cpu_hours", "cost_usd")
    return {k: None if any(d.get(k) is None for d in days) else round(sum(d[k] for d in days), 6) for k in keys}


def format_dry_run(plan: dict) -> str:
    cols = ("date", "videos", "video_hours", "sampled_frames", "heavy_model_frames", "cpu_hours", "cost_usd")
    lines = ["  ".join(f"{c:>18}" for c in cols)]
    for d in plan["dates"] + [dict(plan["total"], date="total")]:
        cells = [d.get(c) for c in cols]
        lines.append("  ".join(f"{'-' if v is None else v:>18}" for v in cells) + (f"  {d['note']}" if d.get("note")
                                                                                     else ""))
    rates = plan["rates"]
    if rates:
        lines.append(f"rates from published days {', '.join(rates['days'])}")
    elif plan.get("calibrated_pass_rate") is not None:
        lines.append(f"no published day yet: durations read from the videos' headers, heavy-model frames from "
                     f"the prefilter's calibrated pass rate ({plan['calibrated_pass_rate']:.3f}); CPU and cost "
                     f"cannot be estimated before a first date is published")
    else:
        lines.append("no published day yet: heavy-model frames, CPU and cost cannot be estimated")
    lines.append("dry run: nothing was written")
    return "\n".join(lines)


def say_result(result: dict) -> str:
    if result["status"] in ("success", "partial"):
        partial = " as PARTIAL (far more videos quarantined than usual: see pipeline_runs.warnings)" \
            if result["status"] == "partial" else ""
        return (f"{result['date']}: published{partial} ({result['videos']} videos, {result['user_brand_detections']} "
                f"user-brand detections, {result['cpu_s_total']:.0f} CPU s, ${result['estimated_cost_usd']:.5f}; "
                f"run {result['run_id']})")
    return f"{result['date']}: FAILED: {result['error']}"


def print_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
