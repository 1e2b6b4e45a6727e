"""The day's cost estimate, the degrade ladder and the rates fitted from history
(`percolate.core.costing`), and the budget step's plan (`percolate.budget`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from percolate.core.costing import (DEFAULT_RATES, OverBudgetError, VideoFacts, choose_rate, estimate_day,
                                    expected_recall, fit_rates, ladder_from, resolution_class, video_facts)

PRICE = 0.048
HOUR = round(3600 / DEFAULT_RATES.video_s_per_byte)  # stored bytes of a video-hour at the default bitrate


def day(n: int, seconds: float = 600.0, mode: str | None = "keyframes", size: tuple = (640, 360)) -> list:
    known = {f"c{i}": {"duration_s": seconds, "width": size[0], "height": size[1], "decode_mode": mode}
             for i in range(n)}
    return video_facts([{"call_id": f"c{i}", "size_bytes": 1000} for i in range(n)], known)


def test_resolution_classes():
    assert [resolution_class(w, h) for w, h in ((640, 360), (1280, 720), (1920, 1080), (3840, 2160), (None, 5))] \
        == ["sd", "hd", "fhd", "uhd", "unknown"]


def test_estimate_adds_fixed_and_marginal_parts_per_stage():
    one, ten = (estimate_day(day(n), DEFAULT_RATES, 1.0, PRICE) for n in (1, 10))
    fixed = sum(DEFAULT_RATES.fixed_cpu_s.values())
    assert one["fixed_cpu_s"] == pytest.approx(fixed)
    # ten times the video: the marginal part ten times, the fixed part once
    assert ten["cpu_s_total"] - fixed == pytest.approx(10 * (one["cpu_s_total"] - fixed), rel=1e-3)
    assert ten["sampled_frames"] == 6000 and ten["video_seconds"] == 6000
    assert ten["cost_usd"] == pytest.approx(ten["cpu_s_total"] / 3600 * PRICE, rel=1e-4)
    assert sum(ten["usd"].values()) == pytest.approx(ten["cost_usd"], rel=1e-3)


def test_a_lower_rate_saves_decode_only_in_keyframes_mode():
    key_1, key_q = (estimate_day(day(20, mode="keyframes"), DEFAULT_RATES, f, PRICE) for f in (1.0, 0.25))
    all_1, all_q = (estimate_day(day(20, mode="all"), DEFAULT_RATES, f, PRICE) for f in (1.0, 0.25))
    decode = lambda e: e["cpu_s"]["sample_frames"] - DEFAULT_RATES.fixed_cpu_s["sample_frames"]  # noqa: E731
    assert decode(key_q) == pytest.approx(decode(key_1) / 4, abs=0.02)
    assert decode(all_q) == pytest.approx(decode(all_1))
    assert all_1["cpu_s_total"] > key_1["cpu_s_total"]
    # bigger frames cost more; an unknown duration comes from the stored size
    assert estimate_day(day(20, size=(1280, 720)), DEFAULT_RATES, 1.0, PRICE)["cpu_s_total"] > key_1["cpu_s_total"]
    sized = estimate_day([VideoFacts("x", size_bytes=round(100 / DEFAULT_RATES.video_s_per_byte))], DEFAULT_RATES,
                         1.0, PRICE)
    assert sized["video_seconds"] == pytest.approx(100.0)


def test_the_degrade_ladder_picks_the_highest_rate_that_fits():
    videos = day(200, seconds=3600.0)  # 200 video-hours
    at = lambda f: estimate_day(videos, DEFAULT_RATES, f, PRICE)  # noqa: E731
    costs = {f: at(f)["cost_usd"] for f in (1.0, 0.5, 0.25)}
    assert costs[1.0] > costs[0.5] > costs[0.25]
    assert ladder_from(1.0) == [1.0, 0.5, 0.25] and ladder_from(0.5) == [0.5, 0.25] and ladder_from(2.0)[0] == 2.0

    assert choose_rate(at, 1.0, None)["status"] == "no_budget"
    assert choose_rate(at, 1.0, costs[1.0] + 1e-6)["status"] == "within"
    between = (costs[0.5] + costs[0.25]) / 2
    chosen = choose_rate(at, 1.0, between, "degrade")
    assert (chosen["fps"], chosen["status"]) == (0.25, "degraded")
    assert [t["fps"] for t in chosen["tried"]] == [1.0, 0.5, 0.25]
    assert choose_rate(at, 1.0, costs[0.5], "degrade")["fps"] == 0.5
    with pytest.raises(OverBudgetError, match="over the budget.*at 1 frames/s.*degrade would try"):
        choose_rate(at, 1.0, costs[0.5], "refuse")
    with pytest.raises(OverBudgetError, match="at 0.25 frames/s"):
        choose_rate(at, 1.0, costs[0.25] / 2, "degrade")
    with pytest.raises(ValueError):
        choose_rate(at, 1.0, 1.0, "shrug")


def test_rates_fitted_from_history():
    runs = [{"dt": "2026-11-01", "video_seconds": 600.0, "sampled_frames": 600, "cpu_s_sample_frames": 30.0,
             "cpu_s_prefilter": 23.0, "cpu_s_heavy": 21.0, "cpu_s_publish": 35.0, "size_bytes": 6_000_000},
            {"dt": "2026-11-02", "video_seconds": 6000.0, "sampled_frames": 6000, "cpu_s_sample_frames": 90.0,
             "cpu_s_prefilter": 50.0, "cpu_s_heavy": 30.0, "cpu_s_publish": 50.0, "size_bytes": 60_000_000}]
    videos = [{"dt": "2026-11-01", "duration_s": 600.0, "cpu_s_decode": 6.0, "width": 640, "height": 360,
               "decode_mode": "keyframes", "fps": 1.0},
              {"dt": "2026-11-02", "duration_s": 6000.0, "cpu_s_decode": 60.0, "width": 640, "height": 360,
               "decode_mode": "keyframes", "fps": 1.0}]
    rates = fit_rates(runs, videos)
    assert rates.decode_cpu_s_per_video_s["sd/keyframes"] == pytest.approx(0.01)
    assert rates.fixed_cpu_s["prefilter"] == pytest.approx(20.0) and rates.frame_cpu_s["prefilter"] == \
        pytest.approx(0.005)
    assert rates.fixed_cpu_s["sample_frames"] == pytest.approx(24 - 600 * 6 / 5400)  # decode: per video
    assert rates.video_s_per_byte == pytest.approx(1e-4) and rates.days == ("2026-11-01", "2026-11-02")
    # the fit reproduces its own history
    e = estimate_day(video_facts([{"call_id": "a", "size_bytes": 0}], {"a": videos[1]}), rates, 1.0, PRICE)
    assert e["cpu_s_total"] == pytest.approx(220.0)
    # one run: the default fixed part, the rest per frame; no history: the defaults
    one = fit_rates(runs[:1], videos[:1])
    assert one.fixed_cpu_s["heavy"] == DEFAULT_RATES.fixed_cpu_s["heavy"]
    assert one.frame_cpu_s["heavy"] == pytest.approx((21.0 - DEFAULT_RATES.fixed_cpu_s["heavy"]) / 600)
    assert fit_rates([], []) is DEFAULT_RATES


def test_expected_recall_at_a_rate():
    evaluation = {"recall_by_rate": {"1": {"recall": 0.95}, "0.5": {"recall": 0.9}}}
    assert expected_recall(evaluation, 0.5) == 0.9 and expected_recall(evaluation, 1.0) == 0.95
    assert expected_recall(evaluation, 0.25) is None and expected_recall(None, 1.0) is None


def test_the_budget_step_plans_from_local_documents(tmp_path):
    """A day over budget: refused, or degraded to the rate that fits, the plan kept for publish."""
    from percolate.budget import plan_run, read_plan
    from percolate.core.settings import Settings
    from percolate.io.manifest import write_manifest
    from percolate.io.stage import open_stage
    from percolate.io.store import open_store

    settings = Settings(home=tmp_path, store_uri=str(tmp_path / "store"))
    write_manifest(open_store(settings.store_uri), "2026-11-20",
                   [{"call_id": f"c{i}", "user_id": "u", "video_key": f"videos/dt=2026-11-20/c{i}.mp4",
                     "size_bytes": HOUR} for i in range(100)])  # 100 video-hours at the default bitrate
    models = {"prefilter": "v0001", "heavy": "v0001"}
    at = {f: estimate_day(video_facts([{"call_id": f"c{i}", "size_bytes": HOUR} for i in range(100)]),
                          DEFAULT_RATES, f, settings.cost_per_core_hour)["cost_usd"] for f in (1.0, 0.5)}
    with pytest.raises(OverBudgetError, match="2026-11-20: .*nothing was sampled"):
        plan_run(settings, "2026-11-20", "r1", requested_fps=None, budget_usd=at[0.5], policy="refuse", models=models)
    plan = plan_run(settings, "2026-11-20", "r2", requested_fps=None, budget_usd=at[0.5], policy="degrade",
                    models=models)
    assert (plan["fps"], plan["status"], plan["expected_recall"]) == (0.5, "degraded", None)
    assert plan["estimated_cost_usd"] == pytest.approx(at[0.5])
    kept = read_plan(open_stage(settings, "r2"), "2026-11-20")
    assert json.loads(json.dumps(kept))["fps"] == 0.5 and kept["on_over_budget"] == "degrade"
    assert read_plan(open_stage(settings, "r1"), "2026-11-20") == {}


def test_a_relaunched_date_is_estimated_from_what_its_last_run_found(tmp_path):
    """The date's last good run (its outcome and staged per-video rows) gives the durations."""
    import pandas as pd

    from percolate.budget import plan_run
    from percolate.core.layout import SAMPLE_FRAMES, VIDEOS, record_outcome
    from percolate.core.settings import Settings
    from percolate.io.manifest import write_manifest
    from percolate.io.stage import open_stage
    from percolate.io.store import open_store

    settings, date = Settings(home=tmp_path, store_uri=str(tmp_path / "store")), "2026-11-20"
    write_manifest(open_store(settings.store_uri), date, [
        {"call_id": c, "user_id": "u", "video_key": f"videos/dt={date}/{c}.mp4", "size_bytes": HOUR}
        for c in ("a", "b")])
    folder = Path(open_stage(settings, "r0").uri(SAMPLE_FRAMES, date, VIDEOS))  # the last run's staged rows
    folder.mkdir(parents=True)
    pd.DataFrame({"call_id": ["a", "b"], "status": ["ok", "ok"], "duration_s": [30.0, 90.0], "width": [640, 1280],
                  "height": [360, 720], "decode_mode": ["keyframes", "all"], "cpu_s": [0.2, 2.0]}).to_parquet(
        folder / "part-0.parquet")
    record_outcome(settings.reports_dir, date, "success", "r0")
    plan = plan_run(settings, date, "r1", requested_fps=None, budget_usd=None, policy="refuse",
                    models={"prefilter": "v1", "heavy": "v1"})
    assert plan["estimate"]["video_seconds"] == 120.0 and plan["status"] == "no_budget"
    decode = 30 * DEFAULT_RATES.decode_rate("sd", "keyframes") + 90 * DEFAULT_RATES.decode_rate("hd", "all")
    assert plan["estimate"]["cpu_s"]["sample_frames"] == pytest.approx(
        DEFAULT_RATES.fixed_cpu_s["sample_frames"] + decode, abs=0.01)
