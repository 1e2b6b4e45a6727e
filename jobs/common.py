"""What every job's `main` shares: arguments, stage paths, stage metrics, torch pinning."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from percolate.config import Settings
from percolate.layout import check_date, stage_path

STAGES = ("sample_frames", "prefilter", "heavy", "publish")


def new_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--date", required=True, type=check_date, help="partition to process, YYYY-MM-DD")
    parser.add_argument("--run-id", required=True, help="the Airflow run id (or any unique run name)")
    return parser


def stage_dir(settings: Settings, stage: str, date: str) -> str:
    return stage_path(settings.stage_dir, stage, date)


def metrics_path(settings: Settings, stage: str, date: str) -> Path:
    return settings.stage_dir / "metrics" / f"dt={check_date(date)}" / f"{stage}.json"


def write_metrics(settings: Settings, stage: str, date: str, metrics: dict) -> Path:
    """Record one stage's figures for this date (overwrites the last run's)."""
    path = metrics_path(settings, stage, date)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stage": stage, "date": date, **metrics}, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_metrics(settings: Settings, stage: str, date: str) -> dict:
    path = metrics_path(settings, stage, date)
    if not path.exists():
        raise FileNotFoundError(f"stage {stage!r} has no metrics for {date}: did it run? ({path})")
    return json.loads(path.read_text())


def require_same_run(settings: Settings, stages: tuple[str, ...], date: str, run_id: str) -> dict[str, dict]:
    """The stages' metrics for `date`, if all of them come from `run_id`; else a clear error."""
    metrics = {stage: read_metrics(settings, stage, date) for stage in stages}
    stale = [s for s, m in metrics.items() if m["run_id"] != run_id]
    if stale:
        raise RuntimeError(f"stages {stale} for {date} are not from run {run_id!r}: rerun them first")
    return metrics


def model_spec(settings: Settings, role: str, version: str) -> dict:
    """The registered spec of one model version (thresholds, classes, input)."""
    from models.registry import ModelRegistry
    from percolate.storage import open_store

    return ModelRegistry(open_store(settings.store_uri, settings.s3_endpoint_url)).spec(role, version)


def in_stable_batches(df, partitions: int):
    """Hash partitions sorted by key: the same frames meet in the same model batches on
    every run, so reruns give bit-identical scores."""
    return df.repartition(max(2, partitions), "call_id").sortWithinPartitions("call_id", "frame_index")


def pin_torch_threads(threads: int = 1) -> None:
    """One intra-op thread per Spark task: tasks already fill the cores."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this worker


class Stopwatch:
    """Wall time of a job, and when it started (UTC, ISO, no zone: Spark's session zone is UTC)."""

    def __init__(self) -> None:
        import datetime as dt

        self.start = time.perf_counter()
        self.started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0).isoformat()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 3)
