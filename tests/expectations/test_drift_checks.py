"""Drift of nightly figures against the trailing 7 days."""

from __future__ import annotations

from expectations import DriftReport, check_drift
from expectations.drift import total_variation

BRAND_SHARE = {"lavazza": 0.4, "illy": 0.3, "nespresso": 0.2, "starbucks": 0.1}


def day(videos=1000, frames=20_000, passed=1000, detections=200, shares=None, **extra):
    return {
        "videos": videos,
        "sampled_frames": frames,
        "prefilter_passed": passed,
        "prefilter_pass_rate": passed / frames,
        "detections": detections,
        "brand_share": dict(shares or BRAND_SHARE),
        **extra,
    }


def history(n=7):
    # small day-to-day wobble, most recent first
    return [day(videos=1000 + 10 * i, frames=20_000 - 100 * i, passed=1000 + 5 * i) for i in range(n)]


def test_stable_history_passes():
    report = check_drift(day(videos=1020, frames=19_900, passed=990), history())
    assert isinstance(report, DriftReport)
    assert report.critical == [] and report.warnings == []
    assert report.ok


def test_tenfold_pass_rate_is_critical():
    today = day(passed=10_500)  # pass rate 0.525 vs median ~0.0515: ~10x
    report = check_drift(today, history())
    assert not report.ok
    (msg,) = report.critical
    assert msg.startswith("prefilter_pass_rate drift: today 0.525 vs trailing 7-day median 0.05152")
    assert report.warnings == []


def test_pass_rate_derived_from_counts():
    today = {"videos": 1000, "sampled_frames": 20_000, "prefilter_passed": 10_500}
    hist = [{k: v for k, v in d.items() if k != "prefilter_pass_rate"} for d in history()]
    report = check_drift(today, hist)
    assert any("prefilter_pass_rate" in m for m in report.critical)


def test_volume_two_and_a_half_times_warns():
    report = check_drift(day(videos=2500), history())
    assert report.critical == []
    (msg,) = report.warnings
    assert msg.startswith("videos drift") and "2500" in msg and "1030" in msg  # median of history
    down = check_drift(day(frames=8_000, passed=400), history())  # sampled_frames 2.5x down
    assert [m.split()[0] for m in down.warnings] == ["sampled_frames"]


def test_zero_videos_is_critical():
    report = check_drift(day(videos=0), history())
    assert any(m.startswith("videos drift") for m in report.critical)


def test_short_history_gives_info_only():
    report = check_drift(day(videos=1_000_000, passed=20_000), history(2))
    assert report.critical == [] and report.warnings == []
    assert report.info and "2 day(s) of history" in report.info[0]


def test_only_the_last_seven_days_count():
    old_bad = [day(videos=100_000)] * 10
    report = check_drift(day(), history(7) + old_bad)
    assert report.ok and report.warnings == []


def test_brand_distribution_shift():
    moderate = {"lavazza": 0.1, "illy": 0.3, "nespresso": 0.2, "starbucks": 0.4}  # TVD 0.3.. -> 0.3
    shifted = {"lavazza": 0.0, "illy": 0.0, "nespresso": 0.0, "starbucks": 0.1, "peets": 0.9}
    assert abs(total_variation(moderate, BRAND_SHARE) - 0.3) < 1e-9
    warn = check_drift(day(shares={"lavazza": 0.05, "illy": 0.25, "nespresso": 0.2, "starbucks": 0.5}), history())
    assert [m.split()[0] for m in warn.warnings] == ["brand_share"] and warn.ok
    crit = check_drift(day(shares=shifted), history())
    (msg,) = crit.critical
    assert "brand_share" in msg and "peets" in msg and "lavazza" in msg
    few = check_drift(day(shares=shifted, detections=19), history())
    assert few.ok and few.warnings == []
    assert any("brand_share" in i and "19" in i for i in few.info)


def test_a_quarantined_share_far_above_the_trailing_days_is_a_spike():
    from expectations import quarantine_spike

    usual = [0.01, 0.02, 0.0, 0.01, 0.015]
    assert quarantine_spike(0.03, usual) is None  # within 3x and 5 points of the median
    assert quarantine_spike(0.5, usual).startswith("quarantined share 50.0%")
    assert quarantine_spike(0.5, usual[:2]) is None  # too little history to judge
    assert quarantine_spike(0.25, [0.2, 0.2, 0.2]) is None  # a day like the others
    assert quarantine_spike(0.61, [0.2, 0.2, 0.2]) is not None
