"""The backfill's plan: the dates, which to redo, how many at once, and the dry run's estimate."""

from __future__ import annotations

import pytest

from percolate.core.layout import record_outcome
from percolate.core.settings import Settings
from workflows.backfill import (dates_between, estimate_day, format_dry_run, history_rates, parallel_allowed,
                                to_redo)

HISTORY = [  # two published days: 2 h of video, 7,200 frames, 10% pass, 80% of passes run the heavy model
    {"dt": "2026-05-01", "video_seconds": 3600.0, "sampled_frames": 3600, "prefilter_passed": 360,
     "heavy_model_runs": 288, "cpu_s_total": 360.0},
    {"dt": "2026-05-02", "video_seconds": 3600.0, "sampled_frames": 3600, "prefilter_passed": 360,
     "heavy_model_runs": 288, "cpu_s_total": 360.0},
]


def test_dates_between_includes_both_ends_and_refuses_a_reversed_range():
    assert dates_between("2026-02-27", "2026-03-01") == ["2026-02-27", "2026-02-28", "2026-03-01"]
    assert dates_between("2026-03-01", "2026-03-01") == ["2026-03-01"]
    with pytest.raises(ValueError, match="before --start"):
        dates_between("2026-03-02", "2026-03-01")
    with pytest.raises(ValueError, match="not a date"):
        dates_between("2026-3-1", "2026-03-02")


def test_only_failed_picks_failed_and_never_run_dates(tmp_path):
    settings = Settings(home=tmp_path, store_uri=str(tmp_path / "store"))
    record_outcome(settings.reports_dir, "2026-05-01", "success", "r1")
    record_outcome(settings.reports_dir, "2026-05-02", "failed", "r2", "publish failed")
    record_outcome(settings.reports_dir, "2026-05-03", "failed", "r3")
    record_outcome(settings.reports_dir, "2026-05-03", "success", "r4")  # its rerun succeeded
    assert to_redo(settings, dates_between("2026-05-01", "2026-05-04")) == ["2026-05-02", "2026-05-04"]


def test_parallel_runs_need_a_shared_metastore_and_airflow_database(tmp_path):
    derby = Settings(home=tmp_path, store_uri="s")
    shared = Settings(home=tmp_path, store_uri="s", metastore_url="postgresql://u:p@h:5432/m")
    assert parallel_allowed(derby, 1, {}) == (1, None)
    assert parallel_allowed(derby, 3, {})[0] == 1 and "Derby" in parallel_allowed(derby, 3, {})[1]
    assert parallel_allowed(shared, 3, {})[0] == 1 and "SQLite" in parallel_allowed(shared, 3, {})[1]
    pg = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://u:p@h/airflow"}
    assert parallel_allowed(shared, 3, pg) == (3, None)


def test_the_dry_run_estimates_from_known_durations_and_the_recent_bitrate():
    rates = history_rates(HISTORY, {"2026-05-01": 36_000_000, "2026-05-02": 36_000_000})
    assert rates["frames_per_video_s"] == 1.0 and rates["prefilter_pass_rate"] == 0.1
    assert rates["heavy_runs_per_pass"] == 0.8 and rates["cpu_s_per_video_s"] == 0.1
    assert rates["video_s_per_byte"] == pytest.approx(1e-4)  # 10 kB per second of video
    manifest = [{"call_id": "a", "size_bytes": 1}, {"call_id": "b", "size_bytes": 18_000_000}]
    day = estimate_day("2026-05-03", manifest, {"a": 1800.0}, rates, fps=1.0, cost_per_core_hour=0.048)
    # a: 30 min known from the calls table; b: 18 MB at 10 kB/s = 30 min
    assert day == {"date": "2026-05-03", "videos": 2, "video_hours": 1.0, "hours_estimated_for": 1,
                   "sampled_frames": 3600, "heavy_model_frames": 288, "cpu_hours": 0.1,
                   "cost_usd": pytest.approx(0.1 * 0.048)}
    text = format_dry_run({"dates": [day], "total": {"videos": 2, "video_hours": 1.0}, "rates": rates})
    assert "2026-05-03" in text and "total" in text and "nothing was written" in text


def test_without_history_the_dry_run_says_what_it_cannot_estimate():
    manifest = [{"call_id": "a", "size_bytes": 100}]
    day = estimate_day("2026-05-03", manifest, {"a": 3600.0}, None, fps=2.0, cost_per_core_hour=0.048)
    assert day["sampled_frames"] == 7200 and "cost_usd" not in day  # frames from the sampler's rate
    unknown = estimate_day("2026-05-03", manifest, {}, None, fps=1.0, cost_per_core_hour=0.048)
    assert unknown["video_hours"] is None and "no published day" in unknown["note"]
    assert "cannot be estimated" in format_dry_run({"dates": [unknown], "total": {}, "rates": None})


def test_without_history_durations_come_from_the_headers_and_heavy_frames_from_calibration(tmp_path):
    from media import make_video
    from percolate.io.store import LocalStore
    from workflows.backfill import probe_day, range_total

    store = LocalStore(tmp_path / "store")
    video = tmp_path / "a.mp4"
    make_video(video, n=90, w=64, h=48, rate=30)  # 3 s
    store.put_file("days/dt=2026-05-03/a.mp4", video)
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 5000)
    store.put_file("days/dt=2026-05-03/b.mp4", tmp_path / "junk.mp4")
    manifest = [{"call_id": "a", "video_key": "days/dt=2026-05-03/a.mp4", "size_bytes": video.stat().st_size},
                {"call_id": "b", "video_key": "days/dt=2026-05-03/b.mp4", "size_bytes": 5000}]
    known, per_byte = probe_day(store, manifest)
    assert known == {"a": pytest.approx(3.0, abs=0.15)}  # the junk file's header says nothing
    assert per_byte == pytest.approx(known["a"] / video.stat().st_size)
    day = estimate_day("2026-05-03", manifest, known, None, fps=1.0, cost_per_core_hour=0.048,
                       probed_s_per_byte=per_byte, calibrated_pass_rate=0.1)
    seconds = known["a"] + 5000 * per_byte  # b at a's bitrate
    assert day["hours_estimated_for"] == 1 and day["sampled_frames"] == round(seconds)
    assert day["heavy_model_frames"] == round(seconds * 0.1) and "cost_usd" not in day
    total = range_total([day, day])
    assert total["sampled_frames"] == 2 * day["sampled_frames"] and total["cost_usd"] is None  # unknown, not 0


def test_a_backfill_pins_its_models_once_before_any_date_runs(tmp_path, monkeypatch):
    from percolate.io.registry import open_registry
    from workflows import backfill

    settings = Settings(home=tmp_path, store_uri=str(tmp_path / "store"))
    launched = []

    def fake_run(settings, date, prefilter, heavy, **kwargs):  # records what each date was given
        launched.append((date, prefilter, heavy))
        raise RuntimeError("not run here")

    monkeypatch.setattr("workflows.launch.run_nightly", fake_run)
    results = backfill.run_backfill(settings, ["2026-05-01", "2026-05-02", "2026-05-03"], "production",
                                    "production", max_parallel=3)
    registry = open_registry(settings)  # the shipped models, registered once
    assert registry.versions("prefilter") == ["v0001"] and registry.versions("heavy") == ["v0001"]
    assert sorted(launched) == [(d, "v0001", "v0001") for d in ("2026-05-01", "2026-05-02", "2026-05-03")]
    assert [r["status"] for r in results] == ["failed"] * 3 and "not run here" in results[0]["error"]
