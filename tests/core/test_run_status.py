"""The quarantined-share backstop: a day far worse than the trailing days fails, or is
published as partial, as configured (`percolate.run_status`)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pandas as pd
import pytest

from percolate.core.layout import SAMPLE_FRAMES, VIDEOS, record_outcome, run_summary_path
from percolate.core.tables import VIDEO_OUTCOMES, names
from percolate.io.stage import open_stage
from percolate.run_status import QuarantineSpike, check_quarantine_share, read_run_status

DATE = "2026-03-10"


def _history(settings, shares):
    for i, share in enumerate(shares):
        day = f"2026-03-0{i + 1}"
        path = run_summary_path(settings.reports_dir, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run_id": f"r{i}", "videos": 100, "videos_quarantined": int(share * 100)}))
        record_outcome(settings.reports_dir, day, "success", f"r{i}")


def _outcomes(settings, run_id, quarantined: int, total: int = 20):
    rows = [{c: None for c in names(VIDEO_OUTCOMES)} | {"call_id": f"c{i}", "video_key": f"k{i}",
            "status": "quarantined" if i < quarantined else "ok",
            "reason": "decode_timeout" if i < quarantined else None} for i in range(total)]
    folder = open_stage(settings, run_id).uri(SAMPLE_FRAMES, DATE, VIDEOS)
    os.makedirs(folder, exist_ok=True)
    pd.DataFrame(rows).to_parquet(f"{folder}/part-0.parquet")


def test_a_usual_day_is_success(settings):
    _history(settings, [0.01, 0.02, 0.01])
    _outcomes(settings, "run-a", quarantined=0)
    doc = check_quarantine_share(settings, DATE, "run-a")
    assert doc["status"] == "success" and doc["history_days"] == 3
    assert read_run_status(open_stage(settings, "run-a"), DATE)["status"] == "success"


def test_a_spike_fails_the_run_by_default(settings):
    _history(settings, [0.01, 0.02, 0.01])
    _outcomes(settings, "run-b", quarantined=10)
    with pytest.raises(QuarantineSpike, match="quarantined share 50.0%.*decode_timeout 10"):
        check_quarantine_share(settings, DATE, "run-b")


def test_a_spike_is_partial_when_so_configured(settings):
    settings = replace(settings, on_quarantine_spike="partial")
    _history(settings, [0.01, 0.02, 0.01])
    _outcomes(settings, "run-c", quarantined=10)
    doc = check_quarantine_share(settings, DATE, "run-c")
    assert doc["status"] == "partial" and "50.0%" in doc["warnings"][0]
    assert read_run_status(open_stage(settings, "run-c"), DATE) == doc | {"stage": "run_status", "date": DATE}


def test_without_history_nothing_is_judged(settings):
    _outcomes(settings, "run-d", quarantined=15)
    assert check_quarantine_share(settings, DATE, "run-d")["status"] == "success"
    with pytest.raises(ValueError):
        replace(settings, on_quarantine_spike="ignore")
