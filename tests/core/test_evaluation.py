"""Scoring a day against ground truth: frame level and user-day level."""

from __future__ import annotations

import pandas as pd

from percolate.evaluation import score_frames, score_user_days

TRUTH = {"classes": ["A", "B"], "calls": [
    {"call_id": "c1", "user_id": "u1", "cups": [{"brand": "A", "start_s": 1.5, "end_s": 3.5}], "distractors": []},
    {"call_id": "c2", "user_id": "u2", "cups": [], "distractors": []},
]}
FRAMES = pd.DataFrame({"call_id": ["c1"] * 4 + ["c2"] * 2, "user_id": ["u1"] * 4 + ["u2"] * 2,
                       "frame_index": [0, 1, 2, 3, 0, 1], "ts_ms": [0, 1000, 2000, 3000, 0, 1000]})


def test_frame_scores_count_prefilter_and_cascade():
    scores = FRAMES[["call_id", "frame_index"]].assign(passed=[False, True, True, True, True, False])
    preds = pd.DataFrame({"call_id": ["c1", "c1", "c1", "c2"], "frame_index": [1, 2, 3, 0],
                          "label": ["A", "A", "B", "A"], "score": [0.9, 0.9, 0.9, 0.9],
                          "is_detection": [True, True, True, False]})
    out = score_frames(FRAMES, scores, preds, TRUTH)
    assert out["frames_with_cup"] == 2  # c1 at 2 s and 3 s
    assert out["prefilter"] == {"pass_rate": round(4 / 6, 4), "recall": 1.0, "precision": 0.5}
    # detections: c1/1 (A, wrong: no cup), c1/2 (A, right), c1/3 (B, wrong brand)
    # the heavy model saw both cup frames (c1/2 right, c1/3 wrong brand)
    assert out["heavy"] == {"cup_frames_seen": 2, "brand_accuracy_on_cup_frames": 0.5, "chance_accuracy": 0.5}
    assert out["cascade"]["detections"] == 3
    assert out["cascade"]["precision"] == round(1 / 3, 4)
    assert out["cascade"]["recall"] == 0.5


def test_user_day_scores():
    daily = pd.DataFrame({"user_id": ["u1", "u2"], "brand": ["A", "B"], "confirmed": [True, False]})
    out = score_user_days(daily, TRUTH, FRAMES)
    assert out == {"true_user_brands": 1, "predicted_user_brands": 1, "precision": 1.0, "recall": 1.0}
