"""Where each kind of data lives: object-store keys, stage names and report paths.

Object store (`Settings.store_uri`)::

    videos/dt=YYYY-MM-DD/<call_id>.<ext>       the stored calls
    manifests/dt=YYYY-MM-DD/manifest.csv        call_id,user_id,video_key,size_bytes
    truth/dt=YYYY-MM-DD/ground_truth.json       generated days only: what is visible and when
    models/<role>/<version>/...                 the model registry

Local state (`Settings.home`): the stage area (`stage/<stage>/dt=.../`, see
`percolate.io.stage`), the warehouse, and the reports below.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

# The stages of a nightly run, in order; each writes its part of the stage area (the sampling
# job writes the prefilter stage too: it scores as it samples, jobs/sample_frames.py).
SAMPLE_FRAMES, PREFILTER, HEAVY, PUBLISH = "sample_frames", "prefilter", "heavy", "publish"
STAGES = (SAMPLE_FRAMES, PREFILTER, HEAVY, PUBLISH)
TRAINING = "training"  # the sampling job's output for training days
# parts of the sampling stage's output
FRAMES, VIDEOS = "frames", "videos"
# the prefilter stage's second output (written by the sampling job, which scores as it samples):
# the frames that passed, with their JPEGs (the heavy job's input)
SURVIVORS = "prefilter_survivors"


def check_date(date: str) -> str:
    """Return `date` if it is an ISO date (YYYY-MM-DD), else raise ValueError."""
    try:
        parsed = dt.date.fromisoformat(date)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a date (want YYYY-MM-DD): {date!r}") from exc
    if parsed.isoformat() != date:
        raise ValueError(f"not a date (want YYYY-MM-DD): {date!r}")
    return date


def video_key(date: str, call_id: str, ext: str = "mp4") -> str:
    return f"videos/dt={check_date(date)}/{call_id}.{ext.lstrip('.')}"


def manifest_key(date: str) -> str:
    return f"manifests/dt={check_date(date)}/manifest.csv"


def truth_key(date: str) -> str:
    return f"truth/dt={check_date(date)}/ground_truth.json"


def run_summary_path(reports_dir: Path, date: str) -> Path:
    """The last run's summary for a date (written by the publish job)."""
    return reports_dir / f"dt={check_date(date)}" / "summary.json"


def retrain_result_path(reports_dir: Path, date: str) -> Path:
    """The weekly retrain's result for its date (`percolate retrain`)."""
    return reports_dir / "retrain" / f"result-{check_date(date)}.json"


def run_outcome_path(reports_dir: Path, date: str) -> Path:
    """How the date's last run ended ({status, run_id, at}): what `percolate backfill --only-failed` reads."""
    return reports_dir / f"dt={check_date(date)}" / "outcome.json"


def record_outcome(reports_dir: Path, date: str, status: str, run_id: str | None, error: str | None = None) -> None:
    """Write the date's outcome (atomically: a reader never sees half of it)."""
    import json
    import os

    path = run_outcome_path(reports_dir, date)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    tmp.write_text(json.dumps({"date": date, "status": status, "run_id": run_id, "at": at, "error": error}))
    os.replace(tmp, path)


def evaluation_report_path(reports_dir: Path, dates: list[str]) -> Path:
    """The HTML report of `percolate evaluate` over these dates (JSON beside it)."""
    return reports_dir / "evaluation" / f"{'_'.join(check_date(d) for d in dates)}.html"


def training_report_path(reports_dir: Path) -> Path:
    return reports_dir / "training" / "last_training.json"
