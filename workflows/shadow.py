"""`percolate models shadow`: a challenger pair shadow-scores a published date, and where it
disagrees with the champion (the published rows) is shown.

The challenger scores the very frames the published run sampled (`jobs/shadow_score.py`), into
the batch "<prefilter>+<heavy>" of `shadow_frame_predictions` and `shadow_user_brand_daily`;
then the date's published `user_brand_daily` (champion) and the shadow batch (challenger) are
compared pair by pair (`compare_shadow`, pure), with frame-level counts from both sides'
frame predictions. The comparison is also kept as `reports/shadow/dt=<date>/<batch>.json`.
"""

from __future__ import annotations

import json

from percolate.core.layout import check_date
from percolate.core.settings import Settings
from workflows.query import read_tables

PAIR_COLUMNS = ["user_id", "brand", "frames", "confirmed"]


def shadow_run_id(date: str, batch: str) -> str:
    """The run id the shadow rows carry: shadow-<date>-<prefilter>+<heavy>."""
    return f"shadow-{check_date(date)}-{batch}"


def report_path(settings: Settings, date: str, batch: str):
    return settings.reports_dir / "shadow" / f"dt={check_date(date)}" / f"{batch}.json"


def published_run(settings: Settings, date: str) -> str:
    """The run id of the run that published `date` (its `pipeline_runs` row)."""
    rows = read_tables(settings, [f"SELECT run_id FROM pipeline_runs WHERE dt = '{check_date(date)}'"])[0]
    if not rows:
        raise ValueError(f"{date} is not published: nothing to shadow-score (run `percolate nightly --date {date}`)")
    return rows[0]["run_id"]


def frame_counts_sql(date: str, batch: str) -> str:
    """Frames passed and detections by each side, and by both, over the date's frames (one row)."""
    date = check_date(date)
    both = "c.call_id IS NOT NULL AND s.call_id IS NOT NULL"
    return (
        "SELECT count(c.call_id) AS champion_frames_passed, count(s.call_id) AS challenger_frames_passed, "
        f"coalesce(sum(CASE WHEN {both} THEN 1 ELSE 0 END), 0) AS both_frames_passed, "
        "coalesce(sum(CASE WHEN c.is_detection THEN 1 ELSE 0 END), 0) AS champion_detections, "
        "coalesce(sum(CASE WHEN s.is_detection THEN 1 ELSE 0 END), 0) AS challenger_detections, "
        "coalesce(sum(CASE WHEN c.is_detection AND s.is_detection AND c.label = s.label THEN 1 ELSE 0 END), 0) "
        "AS both_detections "
        f"FROM (SELECT call_id, frame_index, label, is_detection FROM frame_predictions WHERE dt = '{date}') c "
        "FULL OUTER JOIN (SELECT call_id, frame_index, label, is_detection FROM shadow_frame_predictions "
        f"WHERE dt = '{date}' AND batch = '{batch}') s ON c.call_id = s.call_id AND c.frame_index = s.frame_index")


def compare_shadow(champion, challenger, frames: dict | None = None) -> dict:
    """Where champion and challenger disagree on a date, from their `user_brand_daily` rows
    (pandas, columns user_id, brand, frames, confirmed) and, if given, the frame-level counts
    of `frame_counts_sql` (one row as a dict; "both_detections": detections with the same label).

    A pair missing from one side counts as not confirmed there with 0 frames. `disagreements`:
    the user-brand pairs confirmed by one side only (sorted by user, brand); `agree`: the pairs
    seen by either side on which both say the same."""
    import pandas as pd

    sides = {"champion": champion, "challenger": challenger}
    for name, df in sides.items():
        missing = set(PAIR_COLUMNS) - set(df.columns)
        if missing:
            raise ValueError(f"{name} rows lack columns {sorted(missing)}")
    merged = pd.merge(champion[PAIR_COLUMNS], challenger[PAIR_COLUMNS], on=["user_id", "brand"], how="outer",
                      suffixes=("_champion", "_challenger"))
    for side in sides:
        merged[f"confirmed_{side}"] = merged[f"confirmed_{side}"].eq(True)  # missing: not confirmed
        merged[f"frames_{side}"] = pd.to_numeric(merged[f"frames_{side}"]).fillna(0).astype(int)
    differ = merged[merged["confirmed_champion"] != merged["confirmed_challenger"]].sort_values(["user_id", "brand"])
    disagreements = [
        {"user_id": r.user_id, "brand": r.brand, "champion_confirmed": bool(r.confirmed_champion),
         "challenger_confirmed": bool(r.confirmed_challenger), "champion_frames": int(r.frames_champion),
         "challenger_frames": int(r.frames_challenger)} for r in differ.itertuples(index=False)]
    frames = frames or {}

    def frame_counts(side: str) -> dict:
        return {k: int(frames[f"{side}_{k}"]) for k in ("frames_passed", "detections") if f"{side}_{k}" in frames}

    counts = {side: {"user_brand_rows": int(len(df)), "confirmed": int(df["confirmed"].astype(bool).sum()),
                     **frame_counts(side)} for side, df in sides.items()}
    both = {"confirmed": int((merged["confirmed_champion"] & merged["confirmed_challenger"]).sum()),
            **frame_counts("both")}
    return {**counts, "both": both, "disagreements": disagreements, "agree": int(len(merged) - len(differ))}


def shadow_score(settings: Settings, date: str, prefilter: str = "challenger", heavy: str = "challenger") -> dict:
    """Shadow-score `date`'s published frames with the pair (aliases or versions) and compare
    with the published rows; returns the comparison (also written to `report_path`)."""
    import pandas as pd

    from jobs.shadow_score import shadow_batch
    from models.admission import check_pair
    from percolate.io.registry import open_registry
    from workflows.launch import spark_submit

    date = check_date(date)
    registry = open_registry(settings)
    versions = {"prefilter": registry.resolve("prefilter", prefilter), "heavy": registry.resolve("heavy", heavy)}
    check_pair(registry.spec("prefilter", versions["prefilter"]), registry.spec("heavy", versions["heavy"]))
    batch = shadow_batch(versions["prefilter"], versions["heavy"])
    frames_run = published_run(settings, date)
    run_id = shadow_run_id(date, batch)
    spark_submit(settings, "shadow_score", [
        "--date", date, "--run-id", run_id, "--frames-run", frames_run,
        "--prefilter-model", versions["prefilter"], "--heavy-model", versions["heavy"]], f"shadow-{date}-{batch}")
    pairs = ", ".join(PAIR_COLUMNS)
    champion, challenger, frames = read_tables(settings, [
        f"SELECT {pairs} FROM user_brand_daily WHERE dt = '{date}'",
        f"SELECT {pairs} FROM shadow_user_brand_daily WHERE dt = '{date}' AND batch = '{batch}'",
        frame_counts_sql(date, batch)])
    out = {"date": date, "batch": batch, "run_id": run_id, "frames_run": frames_run, "models": versions,
           **compare_shadow(pd.DataFrame(champion, columns=PAIR_COLUMNS),
                            pd.DataFrame(challenger, columns=PAIR_COLUMNS), frames[0] if frames else None)}
    path = report_path(settings, date, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    return dict(out, report=str(path))


def format_shadow(out: dict, limit: int = 20) -> str:
    """The comparison as text: each side's counts, then the pairs they disagree on (the first `limit`)."""
    def side(name: str) -> str:
        c = out[name]
        frames = f"{c['frames_passed']} frames passed, {c['detections']} detections, " if "detections" in c else ""
        return f"  {name:<10} {frames}{c['confirmed']} of {c['user_brand_rows']} user-brands confirmed"

    models = out.get("models") or {}
    lines = [f"shadow {out['batch']} on {out['date']}"
             + (f" (prefilter {models['prefilter']}, heavy {models['heavy']}; frames of run {out['frames_run']})"
                if models else ""),
             side("champion"), side("challenger")]
    both = out.get("both") or {}
    if "detections" in both:
        lines.append(f"  both       {both['frames_passed']} frames passed, {both['detections']} detections "
                     f"with the same label, {both['confirmed']} user-brands confirmed")
    dis = out["disagreements"]
    lines.append(f"{out['agree']} user-brands agree, {len(dis)} disagree" + (":" if dis else ""))
    for d in dis[:limit]:
        who = "champion only" if d["champion_confirmed"] else "challenger only"
        lines.append(f"  {d['user_id']:<16} {d['brand']:<20} {who:<16} frames {d['champion_frames']} vs "
                     f"{d['challenger_frames']}")
    if len(dis) > limit:
        lines.append(f"  ... and {len(dis) - limit} more (--json for all)")
    if out.get("report"):
        lines.append(f"report: {out['report']}")
    return "\n".join(lines)
