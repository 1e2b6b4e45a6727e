"""Object-store keys for each kind of data; one place so every job agrees.

    videos/dt=YYYY-MM-DD/<call_id>.<ext>       the stored calls
    manifests/dt=YYYY-MM-DD/manifest.csv        call_id,user_id,video_key,size_bytes
    truth/dt=YYYY-MM-DD/ground_truth.json       generated days only: what is visible and when
    models/<role>/<version>/...                 the model registry
"""

from __future__ import annotations

import datetime as dt

MANIFEST_COLUMNS = ("call_id", "user_id", "video_key", "size_bytes")


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


def videos_prefix(date: str) -> str:
    return f"videos/dt={check_date(date)}/"


def manifest_key(date: str) -> str:
    return f"manifests/dt={check_date(date)}/manifest.csv"


def truth_key(date: str) -> str:
    return f"truth/dt={check_date(date)}/ground_truth.json"


def stage_path(stage_dir, stage: str, date: str) -> str:
    """Local (or Hadoop) path of one stage's Parquet for one date."""
    return f"{stage_dir}/{stage}/dt={check_date(date)}"
