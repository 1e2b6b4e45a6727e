"""Validating each hand-over between stages with the GX suites in `expectations/`.

Each check loads one stage's output for one date as pandas (never the pixels), validates
it, and records the report under `stage/validation/dt=.../<suite>.json`, which the publish
job gathers into `pipeline_runs`. A critical failure raises `ValidationFailed`, naming the
expectation and the offending values.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd

from percolate.config import Settings
from percolate.layout import check_date, stage_path


def gx_root(settings: Settings) -> Path:
    return settings.home / "gx"


def reports_dir(settings: Settings, date: str) -> Path:
    return settings.stage_dir / "validation" / f"dt={check_date(date)}"


def read_stage(settings: Settings, stage: str, date: str, sub: str = "", columns=None) -> pd.DataFrame:
    path = stage_path(settings.stage_dir, stage, date) + (f"/{sub}" if sub else "")
    return pd.read_parquet(path, columns=columns)


def handover(settings: Settings, suite: str, date: str) -> pd.DataFrame:
    """The data a suite checks, for one date."""
    if suite == "manifest":
        from percolate.manifest import read_manifest
        from percolate.storage import open_store

        rows = read_manifest(open_store(settings.store_uri, settings.s3_endpoint_url), date)
        return pd.DataFrame(rows, columns=["call_id", "user_id", "video_key", "size_bytes"]).astype(
            {"size_bytes": "int64"})
    if suite == "sampled_frames":
        return read_stage(settings, "sample_frames", date, "frames",
                          ["call_id", "user_id", "frame_index", "ts_ms", "width", "height", "jpeg_bytes",
                           "decode_mode"])
    if suite == "video_outcomes":
        return read_stage(settings, "sample_frames", date, "videos")
    if suite == "prefilter_scores":
        return read_stage(settings, "prefilter", date)
    if suite == "heavy_predictions":
        return read_stage(settings, "heavy", date)
    raise ValueError(f"no hand-over named {suite!r}")


def record(settings: Settings, date: str, report) -> Path:
    path = reports_dir(settings, date) / f"{report.suite}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    os.replace(tmp, path)
    return path


def check(settings: Settings, suite: str, date: str, run_id: str, data: pd.DataFrame | None = None,
          **suite_params):
    """Validate one hand-over, record the report, raise ValidationFailed on a critical failure."""
    from expectations import ValidationFailed, validate

    frame = handover(settings, suite, date) if data is None else data
    report = validate(frame, suite, gx_root=gx_root(settings), run_name=f"{run_id}-{suite}", **suite_params)
    record(settings, date, report)
    # stderr: task logs show it, and a command's --json stdout stays one document
    print(f"[percolate] validation {report.summary()}", file=sys.stderr, flush=True)
    for warning in report.warnings:
        print(f"[percolate] validation warning: {warning}", file=sys.stderr, flush=True)
    if not report.success:
        raise ValidationFailed(report)
    return report


def clear_reports(settings: Settings, date: str) -> None:
    """Forget the last run's reports for a date (a new run starts with none)."""
    folder = reports_dir(settings, date)
    if folder.exists():
        for path in folder.glob("*.json"):
            path.unlink()


def gathered(settings: Settings, date: str) -> dict:
    """All reports recorded for a date: warnings, failures and the data docs location."""
    warnings, docs, suites = [], None, {}
    folder = reports_dir(settings, date)
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        report = json.loads(path.read_text())
        suites[report["suite"]] = "passed" if report["success"] else "failed"
        warnings += [f"{report['suite']}: {w}" for w in report["warnings"]]
        docs = report.get("docs_path") or docs
    return {"suites": suites, "warnings": warnings, "docs_path": docs}
