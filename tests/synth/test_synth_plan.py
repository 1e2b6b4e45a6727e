"""The day plan (truth without rendering): determinism, shares, timing rules, splits."""

from __future__ import annotations

import re

import pytest

from percolate.core.layout import video_key
from percolate.io.store import LocalStore
from synth import BRAND_NAMES, label_at, load_truth, plan_day
from synth.backgrounds import background_names
from synth.generate import MAX_EPISODE_S

DATE = "2026-03-05"


def test_plan_is_deterministic_and_seed_dependent():
    a = plan_day(DATE, 40, seed=7, min_seconds=20, max_seconds=60)
    b = plan_day(DATE, 40, seed=7, min_seconds=20, max_seconds=60)
    c = plan_day(DATE, 40, seed=8, min_seconds=20, max_seconds=60)
    assert a == b
    assert a["calls"] != c["calls"]
    assert [x["call_id"] for x in a["calls"]] == [x["call_id"] for x in c["calls"]]


def test_plan_format_ids_and_users():
    t = plan_day(DATE, 30, seed=1, backgrounds="train", min_seconds=20, max_seconds=60)
    assert set(t) == {"date", "seed", "backgrounds", "classes", "calls"}
    assert t["classes"] == BRAND_NAMES and len(BRAND_NAMES) == 10 and len(set(BRAND_NAMES)) == 10
    keys = ["call_id", "user_id", "video_key", "duration_s", "fps", "width", "height", "background", "cups",
            "distractors"]
    for i, call in enumerate(t["calls"]):
        assert list(call) == keys
        assert call["call_id"] == f"c20260305-{i:05d}"
        assert re.fullmatch(r"u\d{5}", call["user_id"])
        assert call["video_key"] == video_key(DATE, call["call_id"])
        assert (call["fps"], call["width"], call["height"]) == (30, 640, 360)
        assert 20 - 1 / 30 <= call["duration_s"] <= 60 + 1 / 30
        assert call["background"] in background_names("train")
    users = [c["user_id"] for c in t["calls"]]
    assert len(set(users)) == 10  # about calls / 3, several calls each


def test_episode_timing_rules():
    t = plan_day(DATE, 300, seed=3, min_seconds=4, max_seconds=90)
    for call in t["calls"]:
        for eps in (call["cups"], call["distractors"]):
            prev_end = -1.0
            for e in eps:
                assert 0.4 < e["start_s"] < e["end_s"] <= call["duration_s"] - 0.4
                assert e["end_s"] - e["start_s"] <= MAX_EPISODE_S + 0.05
                assert e["start_s"] >= prev_end + 0.6  # never overlapping, room to slide in and out
                prev_end = e["end_s"]
                # boundaries sit half a frame before a frame: millisecond rounding cannot move a frame across
                for b in (e["start_s"], e["end_s"]):
                    assert abs((b * 30 + 0.5) - round(b * 30 + 0.5)) < 0.01
        for e in call["cups"]:
            assert e["brand"] in BRAND_NAMES


def test_shares_over_a_large_plan():
    t = plan_day(DATE, 1000, seed=11, min_seconds=20, max_seconds=180)
    calls = t["calls"]
    cup = [c for c in calls if c["cups"]]
    dis = [c for c in calls if c["distractors"]]
    assert 0.17 <= len(cup) / len(calls) <= 0.23
    assert 0.26 <= len(dis) / len(calls) <= 0.34
    assert any(c["cups"] and c["distractors"] for c in calls)
    two = [c for c in cup if len({e["brand"] for e in c["cups"]}) == 2]
    assert 0 < len(two) < 0.3 * len(cup)
    assert {len(c["cups"]) for c in cup} == {1, 2, 3}
    lengths = [e["end_s"] - e["start_s"] for c in cup for e in c["cups"]]
    assert min(lengths) >= 2.9 and max(lengths) <= 20.05
    assert {e["brand"] for c in cup for e in c["cups"]} == set(BRAND_NAMES)
    kinds = {e["kind"] for c in dis for e in c["distractors"]}
    assert {"plain_mug", "unknown_cup", "phone"} <= kinds


def test_short_calls_still_fit_an_episode():
    t = plan_day(DATE, 3, seed=11, min_seconds=4, max_seconds=7)
    cup = [c for c in t["calls"] if c["cups"]]
    assert len(cup) == 1
    e = cup[0]["cups"][0]
    assert e["end_s"] - e["start_s"] >= 2.5


def test_backgrounds_train_and_holdout_are_disjoint():
    train, holdout = set(background_names("train")), set(background_names("holdout"))
    assert train and holdout and not train & holdout
    assert set(background_names("all")) == train | holdout
    clip = lambda names: {n for n in names if n.startswith("clip:")}  # noqa: E731
    assert clip(train) == {"clip:carphone_pristine", "clip:bikes"}
    assert clip(holdout) == {"clip:carphone_distorted", "clip:bigbuckbunny"}
    t = plan_day(DATE, 200, seed=2, backgrounds="holdout")
    assert {c["background"] for c in t["calls"]} <= holdout
    with pytest.raises(ValueError):
        background_names("test")


def test_label_at_boundaries():
    call = {"cups": [{"brand": "Sunmill", "start_s": 1.4833, "end_s": 4.15},
                     {"brand": "Duskbean", "start_s": 6.0, "end_s": 7.0}]}
    assert label_at(call, 1.4832) is None
    assert label_at(call, 1.4833) == "Sunmill"
    assert label_at(call, 45 / 30) == "Sunmill"  # frame 45, first visible frame
    assert label_at(call, 44 / 30) is None
    assert label_at(call, 4.1499) == "Sunmill"
    assert label_at(call, 4.15) is None  # end is exclusive
    assert label_at(call, 6.5) == "Duskbean"
    assert label_at({"cups": []}, 1.0) is None
    overlap = {"cups": [{"brand": "A", "start_s": 0, "end_s": 2}, {"brand": "B", "start_s": 1, "end_s": 5},
                        {"brand": "C", "start_s": 1, "end_s": 5}]}
    assert label_at(overlap, 1.5) == "B"  # the longer episode, then the first listed


def test_load_truth(tmp_path):
    import json

    from percolate.core.layout import truth_key

    truth = plan_day(DATE, 30, seed=4, min_seconds=10, max_seconds=30)
    store = LocalStore(tmp_path)
    store.put_bytes(truth_key(DATE), json.dumps(truth).encode())
    loaded = load_truth(store, DATE)
    assert loaded == truth
    with pytest.raises(FileNotFoundError):
        load_truth(store, "2026-03-06")
