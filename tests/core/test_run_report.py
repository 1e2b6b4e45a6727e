"""The run summary that `percolate nightly` and the DAG's report task print."""

from __future__ import annotations

import json

from percolate.report import format_funnel

SUMMARY = {"run_id": "r1", "date": "2026-05-02", "status": "success", "videos_ok": 9, "videos_quarantined": 13,
           "sampled_frames": 35, "prefilter_passed": 35, "heavy_model_runs": 30, "heavy_positives": 35, "user_brand_detections": 6,
           "validation": json.dumps({"manifest": "passed", "frame_predictions": "passed"})}


def test_summary_shows_warnings_and_the_data_docs_link():
    text = format_funnel(dict(SUMMARY, data_docs="/var/gx/uncommitted/data_docs/local_site/index.html",
                              warnings=json.dumps(["manifest: size_bytes > 0 failed: 2 of 23 rows",
                                                   "13 videos quarantined"])))
    assert "Data docs: /var/gx/uncommitted/data_docs/local_site/index.html" in text
    assert "Warnings (2):\n  - manifest: size_bytes > 0 failed: 2 of 23 rows\n  - 13 videos quarantined" in text
    assert "videos quarantined              13" in text
    assert "heavy model runs                30" in text


def test_funnel_counts_the_heavy_model_runs_and_the_reused_frames():
    text = format_funnel(dict(SUMMARY, heavy_model_runs=20, warnings="[]"))
    assert "heavy model runs                20  ( 57.1% of previous)  (the other 15 reused an unchanged input)" in text
    assert "Validation: frame_predictions passed, manifest passed" in text


def test_summary_without_warnings_says_so_and_long_lists_are_cut():
    assert "Warnings: none" in format_funnel(dict(SUMMARY, warnings="[]"))
    text = format_funnel(dict(SUMMARY, warnings=json.dumps([f"w{i}" for i in range(25)])))
    assert "Warnings (25):" in text and "  - w19" in text and "  - w20" not in text
    assert "... 5 more in pipeline_runs.warnings" in text
