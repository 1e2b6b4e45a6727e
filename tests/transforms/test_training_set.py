"""People's labels -> frames to retrain on: point in time, user-day labels onto their frames,
disagreeing labels left out; and the training set's checks and gates."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from models.gates import Gates, decide_training_set
from percolate.transforms.training_set import (class_balance, frame_labels, label_agreement, leakage, point_in_time,
                                               settle, unmatched_user_days)

RULE = '{"min_frames": 2, "min_score": 0.7}'
LABELS = ("dt string, day string, call_id string, frame_index int, user_id string, brand string, verdict string, "
          "source string, known_at timestamp")


def _labels(spark, rows):
    return spark.createDataFrame(rows, LABELS)


def _predictions(spark):
    rows = [("2026-11-02", "c1", "u1", 1, "Brewhaus", 0.95, RULE, 0.9),
            ("2026-11-02", "c1", "u1", 2, "Brewhaus", 0.80, RULE, 0.9),
            ("2026-11-02", "c1", "u1", 3, "Brewhaus", 0.30, RULE, 0.9),  # below the rule: not support
            ("2026-11-02", "c2", "u2", 1, "Sunmill", 0.99, RULE, 0.9)]
    return spark.createDataFrame(rows, "dt string, call_id string, user_id string, frame_index int, label string, "
                                       "score double, aggregation string, heavy_threshold double")


T = dt.datetime(2026, 11, 3, 9)


@pytest.mark.spark
def test_labels_are_read_as_known_at_the_date(spark):
    labels = _labels(spark, [
        ("2026-11-03", "2026-11-02", None, None, "u1", "Brewhaus", "confirmed", "reorder_button", T),
        ("2026-11-05", "2026-11-02", None, None, "u2", "Sunmill", "confirmed", "import", T),  # arrived later
        ("2026-11-03", "2026-11-02", None, None, "u2", "Sunmill", "rejected", "import",
         dt.datetime(2026, 11, 4, 1)),  # known after the date ended
        ("2026-10-01", "2026-10-01", None, None, "u2", "Sunmill", "confirmed", "import", T.replace(month=10)),
    ])
    kept = point_in_time(labels, "2026-11-03", weeks=1).collect()
    assert [(r.user_id, r.brand, r.verdict) for r in kept] == [("u1", "Brewhaus", "confirmed")]


@pytest.mark.spark
def test_user_day_labels_name_their_supporting_frames_and_disagreeing_frames_are_left_out(spark):
    labels = _labels(spark, [
        ("2026-11-03", "2026-11-02", None, None, "u1", "Brewhaus", "confirmed", "reorder_button", T),
        ("2026-11-03", "2026-11-02", None, None, "u2", "Sunmill", "rejected", "reorder_button", T),
        ("2026-11-03", "2026-11-02", "c1", 2, "u1", "none", "confirmed", "audit", T),  # disagrees with the button
        ("2026-11-03", "2026-11-02", "c9", 7, "u9", "none", "confirmed", "audit", T),
        ("2026-11-03", "2026-11-02", "c9", 8, "u9", "Sunmill", "rejected", "audit", T),  # says only what it is not
        ("2026-11-03", "2026-11-02", None, None, "u3", "Sunmill", "confirmed", "import", T),  # no frame supports it
    ])
    predictions = _predictions(spark)
    agreed, conflicts = settle(frame_labels(labels, predictions))
    got = sorted((r.call_id, r.frame_index, r.label, r.source) for r in agreed.collect())
    assert got == [("c1", 1, "Brewhaus", "reorder_button"), ("c2", 1, None, "reorder_button"),
                   ("c9", 7, None, "audit")]
    assert [(r.call_id, r.frame_index) for r in conflicts.collect()] == [("c1", 2)]
    assert [r.user_id for r in unmatched_user_days(labels, predictions).collect()] == ["u3"]


def test_agreement_balance_and_leakage_checks():
    feedback = pd.DataFrame({
        "day": ["2026-11-02"] * 4, "call_id": ["c1", "c1", "c2", "c3"], "frame_index": [1, 2, 1, 1],
        "label": ["Brewhaus", "Sunmill", None, None], "champion_label": ["Brewhaus", "Brewhaus", "Sunmill", None],
        "champion_score": [0.99, 0.95, 0.99, None], "champion_threshold": [0.9, 0.9, 0.9, None]})
    agreement = label_agreement(feedback, unmatched=1)
    assert agreement == {"agree": 1, "judged": 4, "agreement": 0.25}
    assert class_balance(feedback)["max_share"] == 0.5 and class_balance(feedback)["negatives"] == 2
    assert leakage(feedback, ["2026-02-01"], {"x"})["frames"] == 0
    leaked = leakage(feedback, ["2026-11-02"], {"c3"})
    assert leaked["days"] == ["2026-11-02"] and leaked["frames"] > 0


def test_training_set_gates_fail_closed_and_leakage_always_counts():
    checks = {"label_agreement": {"agree": 95, "judged": 100, "agreement": 0.95},
              "class_balance": {"max_share": 0.3}, "conflicts": {"frames": 1, "share": 0.01},
              "leakage": {"frames": 0, "days": [], "calls": []}}
    shipped = Gates(min_label_agreement=0.9, max_class_share=0.5, max_label_conflicts=0.05)
    assert all(g["passed"] for g in decide_training_set(checks, shipped))
    unset = decide_training_set(checks, Gates())
    assert [g["gate"] for g in unset if not g["passed"]] == ["label_agreement", "class_balance", "label_conflicts"]
    corrupted = dict(checks, label_agreement={"agree": 60, "judged": 100, "agreement": 0.6},
                     leakage={"frames": 3, "days": ["2026-02-01"], "calls": []})
    failed = [g["gate"] for g in decide_training_set(corrupted, shipped) if not g["passed"]]
    assert failed == ["label_agreement", "leakage"]
