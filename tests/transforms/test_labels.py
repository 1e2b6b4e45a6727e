"""Imported labels: each bad row is quarantined with its reason; the reorder button's simulation."""

import pandas as pd
import pytest

from percolate.transforms.labels import check_labels, label_id, simulate_reorder_button

BRANDS = ["Velvet Drip", "Bean Royale", "Kopi Luwak Co"]
CALLS = pd.DataFrame([
    {"call_id": "c1", "user_id": "u1", "day": "2026-12-01", "status": "ok", "sampled_frames": 30},
    {"call_id": "c2", "user_id": "u2", "day": "2026-12-01", "status": "ok", "sampled_frames": 10},
    {"call_id": "c3", "user_id": "u3", "day": "2026-12-01", "status": "quarantined", "sampled_frames": 0},
])


def row(**kw):
    return {"user_id": "u1", "day": "2026-12-01", "brand": "Velvet Drip", "verdict": "confirmed", **kw}


def test_good_rows_become_labels_and_bad_ones_say_why():
    raw = pd.DataFrame([
        row(),
        row(brand="Bean Royale", verdict="Rejected", call_id="c1", frame_index=29, source="audit"),
        row(user_id=""),  # missing_field
        row(day="01/12/2026"),  # bad_date
        row(verdict="maybe"),  # bad_verdict
        row(source="twitter"),  # bad_source
        row(brand="Nescafe"),  # unknown_brand
        row(day="2026-12-03"),  # from_the_future: after the arrival date
        row(known_at="2026-12-05T10:00:00Z"),  # from_the_future: given after it arrived
        row(user_id="u3"),  # unknown_user_day: u3's only call was quarantined
        row(call_id="c2", frame_index=3),  # unknown_frame: c2 is u2's call
        row(call_id="c1", frame_index=30),  # unknown_frame: out of range
        row(verdict="rejected"),  # duplicate of the first row's subject and brand
    ])
    labels, bad = check_labels(raw, arrived="2026-12-02", brands=BRANDS, calls=CALLS)
    assert list(bad["reason"]) == ["missing_field", "bad_date", "bad_verdict", "bad_source", "unknown_brand",
                                   "from_the_future", "from_the_future", "unknown_user_day", "unknown_frame",
                                   "unknown_frame", "duplicate"]
    assert list(bad["row_number"]) == list(range(3, 14))
    assert list(labels["subject"]) == ["user_day:u1:2026-12-01", "frame:c1:29"]
    assert list(labels["verdict"]) == ["confirmed", "rejected"] and list(labels["source"]) == ["import", "audit"]
    assert labels["label_id"].iloc[0] == label_id("user_day:u1:2026-12-01", "Velvet Drip", "confirmed", "import")
    assert len(labels) + len(bad) == len(raw)  # nothing lost, nothing doubled


def test_the_reorder_button_simulation_is_mostly_ignored_and_mostly_right():
    daily = pd.DataFrame([{"user_id": f"u{i}", "brand": BRANDS[i % 3]} for i in range(2000)])
    truth = {(f"u{i}", BRANDS[i % 3]) for i in range(0, 2000, 2)}  # every other detection is right
    clicks = simulate_reorder_button(daily, truth, "2026-12-01", seed=1)
    assert 0.15 < len(clicks) / len(daily) < 0.25  # most users ignore the button
    right = [(r.user_id, r.brand) in truth for r in clicks.itertuples()]
    agree = sum((v == "confirmed") == t for v, t in zip(clicks["verdict"], right)) / len(clicks)
    assert 0.94 < agree < 0.995  # a few click wrongly
    assert clicks.equals(simulate_reorder_button(daily, truth, "2026-12-01", seed=1))  # deterministic
    labels, bad = check_labels(clicks, arrived="2026-12-02", brands=BRANDS, calls=pd.DataFrame(
        {"call_id": [f"c{i}" for i in range(2000)], "user_id": [f"u{i}" for i in range(2000)],
         "day": "2026-12-01", "status": "ok", "sampled_frames": 10}))
    assert bad.empty and set(labels["source"]) == {"reorder_button"}  # they arrive the next day


def test_a_file_without_the_columns_is_an_error_not_a_quarantine():
    with pytest.raises(ValueError, match=r"lack columns \['verdict'\]"):
        check_labels(pd.DataFrame([{"user_id": "u1", "day": "2026-12-01", "brand": "x"}]), arrived="2026-12-02",
                     brands=BRANDS, calls=CALLS)
