"""Validating each hand-over between stages with the expectation suites of `expectations/`.

Each check loads one stage's output for one date as pandas (never the pixels), validates
it with the suite of the same name, and records the report in the stage area, where the
publish job gathers them into `pipeline_runs`. A critical failure raises
`ValidationFailed`, naming the expectation and the offending values.
"""

from __future__ import annotations

import sys

import pandas as pd

from percolate.core import tables
from percolate.core.layout import FRAMES, HEAVY, PREFILTER, SAMPLE_FRAMES, VIDEOS
from percolate.core.reasons import REASON_CODES
from percolate.core.settings import Settings
from percolate.io.stage import StageArea, open_stage

_NO_PIXELS = tuple(c for c in tables.SAMPLED_FRAMES if c.name != "jpeg")
# suite -> the columns it checks (from the one definition of each table)
COLUMNS: dict[str, tables.Columns] = {
    "manifest": tables.MANIFEST,
    "sampled_frames": _NO_PIXELS,
    "video_outcomes": tables.VIDEO_OUTCOMES,
    "prefilter_scores": tables.PREFILTER_SCORES,
    "heavy_predictions": tables.HEAVY_PREDICTIONS,
    "frame_predictions": tables.WAREHOUSE["frame_predictions"],
    "user_brand_daily": tables.WAREHOUSE["user_brand_daily"],
    "labels": tables.WAREHOUSE["labels"],
    "audit_frames": tables.WAREHOUSE["audit_frames"],
}
# suite -> where the stage area keeps its data (stage, part)
STAGED = {"sampled_frames": (SAMPLE_FRAMES, FRAMES), "video_outcomes": (SAMPLE_FRAMES, VIDEOS),
          "prefilter_scores": (PREFILTER, ""), "heavy_predictions": (HEAVY, "")}


def load(settings: Settings, suite: str, date: str, run_id: str = "") -> pd.DataFrame:
    """The data a suite checks, for one date (stage data: run `run_id`'s)."""
    if suite == "manifest":
        from percolate.io.manifest import read_manifest
        from percolate.io.store import open_store

        rows = read_manifest(open_store(settings.store_uri, settings.s3_endpoint_url), date)
        return pd.DataFrame(rows, columns=tables.names(tables.MANIFEST)).astype({"size_bytes": "int64"})
    if suite not in STAGED:
        raise ValueError(f"no hand-over named {suite!r}")
    stage, part = STAGED[suite]
    return open_stage(settings, run_id).read_pandas(stage, date, part, tables.names(COLUMNS[suite]))


def check(settings: Settings, suite: str, date: str, run_id: str, data: pd.DataFrame | None = None,
          **suite_params):
    """Validate one hand-over, record the report, raise ValidationFailed on a critical failure."""
    from expectations import ValidationFailed, validate

    if suite in COLUMNS:
        suite_params.setdefault("columns", tables.names(COLUMNS[suite]))
    if suite == "video_outcomes":
        suite_params.setdefault("reason_codes", list(REASON_CODES))
        if "manifest_call_ids" not in suite_params:  # every input accounted for exactly once
            suite_params["manifest_call_ids"] = load(settings, "manifest", date)["call_id"].tolist()
    if suite == "audit_frames":
        suite_params.setdefault("strata", list(tables.AUDIT_STRATA))
    if suite == "labels":
        suite_params.setdefault("verdicts", list(tables.LABEL_VERDICTS))
        suite_params.setdefault("sources", list(tables.LABEL_SOURCES))
    frame = load(settings, suite, date, run_id) if data is None else data
    report = validate(frame, suite, gx_root=settings.gx_dir, run_name=f"{run_id}-{suite}", **suite_params)
    open_stage(settings, run_id).write_report(date, report.suite, report.to_dict())
    # stderr: task logs show it, and a command's --json stdout stays one document
    print(f"[percolate] validation {report.summary()}", file=sys.stderr, flush=True)
    for warning in report.warnings:
        print(f"[percolate] validation warning: {warning}", file=sys.stderr, flush=True)
    if not report.success:
        raise ValidationFailed(report)
    return report


def gathered(stage: StageArea, date: str) -> dict:
    """All reports recorded for a date: which suites passed, warnings, the data docs location."""
    warnings, docs, suites = [], None, {}
    for report in stage.reports(date):
        suites[report["suite"]] = "passed" if report["success"] else "failed"
        warnings += [f"{report['suite']}: {w}" for w in report["warnings"]]
        docs = report.get("docs_path") or docs
    return {"suites": suites, "warnings": warnings, "docs_path": docs}
