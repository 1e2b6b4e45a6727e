"""What every job's `main` shares: its arguments, its wall clock, and the model specs."""

from __future__ import annotations

import argparse
import datetime as dt
import time

from percolate.core.layout import check_date
from percolate.core.metering import start_job_meter
from percolate.core.settings import Settings


def new_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--date", required=True, type=check_date, help="partition to process, YYYY-MM-DD")
    parser.add_argument("--run-id", required=True, help="the Airflow run id (or any unique run name)")
    return parser


def optional_float(value: str) -> float | None:
    """A number, or None for "" (a DAG param left unset renders as an empty argument)."""
    return float(value) if value.strip() else None


def hold_lease(settings: Settings, date: str, run_id: str) -> None:
    """Take or renew the date's lease for this run (`percolate.io.lease`); raise if another run holds it."""
    from percolate.io.lease import open_leases

    open_leases(settings).acquire(date, run_id)


def model_spec(settings: Settings, role: str, version: str) -> dict:
    """The registered spec of one model version (thresholds, classes, input)."""
    from percolate.io.registry import open_registry

    return open_registry(settings).spec(role, version)


class Stopwatch:
    """Wall time of a job, and when it started (UTC, ISO, no zone: Spark's session zone is UTC).
    Starts the job's CPU meter too (`percolate.core.metering.start_job_meter`): create it
    before the Spark session, so the meter sees every Python worker."""

    def __init__(self) -> None:
        start_job_meter()
        self.start = time.perf_counter()
        self.started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0).isoformat()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 3)
