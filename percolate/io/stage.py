"""The stage area: what one Spark job hands to the next, for one date and one run.

Everything is keyed by the run id as well as the date, so two runs of a date (a failed
nightly run resumed after a backfill of the date, say) never read each other's inputs.

Each stage writes Parquet (read by the next job with Spark, and by the validation tasks
and the evaluation with pandas), its figures (`metrics`: run id, counts, CPU seconds) and
the reports of the expectation suites run on it. Jobs only ever ask this interface for a
location or a document, so the area can move (another directory, an object store) by
configuration alone: `open_stage(settings)` picks the implementation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from percolate.core.layout import check_date

if TYPE_CHECKING:
    import pandas as pd

    from percolate.core.settings import Settings


class StageArea(Protocol):
    def uri(self, stage: str, date: str, part: str = "") -> str:
        """Where Spark reads and writes one stage's Parquet for one date."""

    def read_pandas(self, stage: str, date: str, part: str = "", columns: list[str] | None = None) -> "pd.DataFrame":
        ...

    def write_metrics(self, stage: str, date: str, metrics: dict) -> None: ...

    def read_metrics(self, stage: str, date: str) -> dict: ...

    def write_report(self, date: str, suite: str, report: dict) -> None: ...

    def reports(self, date: str) -> list[dict]: ...

    def clear_reports(self, date: str) -> None: ...

    def remove_other_runs(self, date: str) -> list[str]: ...


def run_key(run_id: str) -> str:
    """A run id as a path segment (Airflow's contain ':' and '+', which Hadoop paths refuse)."""
    if not run_id:
        raise ValueError("a run id is needed to find the stage area's data")
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


class LocalStageArea:
    """A directory: `<root>/<stage>/dt=<date>/run=<run>/[<part>]`,
    `<root>/metrics/dt=<date>/run=<run>/<stage>.json`, `<root>/validation/dt=<date>/run=<run>/<suite>.json`."""

    def __init__(self, root: str | Path, run_id: str):
        self.root, self.run_id, self.run = Path(root), run_id, run_key(run_id)

    def uri(self, stage: str, date: str, part: str = "") -> str:
        base = f"{self.root}/{stage}/dt={check_date(date)}/run={self.run}"
        return f"{base}/{part}" if part else base

    def read_pandas(self, stage: str, date: str, part: str = "", columns: list[str] | None = None) -> "pd.DataFrame":
        import pandas as pd

        return pd.read_parquet(self.uri(stage, date, part), columns=columns)

    def _metrics_path(self, stage: str, date: str) -> Path:
        return self.root / "metrics" / f"dt={check_date(date)}" / f"run={self.run}" / f"{stage}.json"

    def _reports_dir(self, date: str) -> Path:
        return self.root / "validation" / f"dt={check_date(date)}" / f"run={self.run}"

    def write_metrics(self, stage: str, date: str, metrics: dict) -> None:
        _write_json(self._metrics_path(stage, date), {"stage": stage, "date": date, **metrics})

    def read_metrics(self, stage: str, date: str) -> dict:
        path = self._metrics_path(stage, date)
        if not path.exists():
            raise FileNotFoundError(f"stage {stage!r} has no metrics for {date} in run {self.run_id!r}: "
                                    f"did it run? ({path})")
        return json.loads(path.read_text())

    def write_report(self, date: str, suite: str, report: dict) -> None:
        _write_json(self._reports_dir(date) / f"{suite}.json", report)

    def reports(self, date: str) -> list[dict]:
        folder = self._reports_dir(date)
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []

    def clear_reports(self, date: str) -> None:
        folder = self._reports_dir(date)
        for path in folder.glob("*.json") if folder.exists() else []:
            path.unlink()

    def remove_other_runs(self, date: str) -> list[str]:
        """Delete the date's data of every other run (after this one published); their run keys."""
        removed = set()
        for folder in self.root.glob(f"*/dt={check_date(date)}/run=*"):
            if folder.name != f"run={self.run}":
                shutil.rmtree(folder, ignore_errors=True)
                removed.add(folder.name.removeprefix("run="))
        return sorted(removed)


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)  # a reader never sees half a document


def open_stage(settings: "Settings", run_id: str) -> StageArea:
    """Run `run_id`'s part of the stage area the settings name (a local directory: `PERCOLATE_STAGE`)."""
    uri = settings.stage_uri
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"the stage area must be a directory for now, got {uri!r}")
    return LocalStageArea(uri.removeprefix("file://"), run_id)


def require_same_run(stage: StageArea, stages: tuple[str, ...], date: str, run_id: str) -> dict[str, dict]:
    """The stages' metrics for `date`, if all of them come from `run_id`; else a clear error."""
    metrics = {s: stage.read_metrics(s, date) for s in stages}
    stale = [s for s, m in metrics.items() if m["run_id"] != run_id]
    if stale:
        raise RuntimeError(f"stages {stale} for {date} are not from run {run_id!r}: rerun them first")
    return metrics
