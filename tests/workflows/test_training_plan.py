"""The training plan's day shapes, and the cup boxes training frames carry."""

from __future__ import annotations

import pandas as pd
import pytest

from synth.generate import plan_day
from workflows.training import DayShape, TrainingPlan, object_boxes_at


def test_each_date_has_its_shape_and_the_last_calibration_day_looks_real():
    plan = TrainingPlan()
    assert plan.shape(plan.train_dates[0]) == plan.train_shape
    real = plan.shape(plan.calib_dates[-1])
    assert real.max_seconds >= 60 and real.cup_share < plan.train_shape.cup_share
    with pytest.raises(ValueError):
        TrainingPlan(calib_dates=("2026-01-05",), calib_shapes=())
    assert DayShape(1, 4.0, 7.0, 0.5, 0.5).calls == 1


def test_boxes_follow_the_truth():
    truth = plan_day("2026-01-09", 24, seed=3, backgrounds="train", min_seconds=6, max_seconds=12,
                     cup_share=0.6, distractor_share=0.9)
    rows = [{"call_id": c["call_id"], "ts_ms": t * 1000} for c in truth["calls"]
            for t in range(int(c["duration_s"]))]
    frames = pd.DataFrame(rows)
    boxes = object_boxes_at(truth, frames)
    calls = {c["call_id"]: c for c in truth["calls"]}
    n_cup = 0
    for (call_id, ts), bs in zip(frames.itertuples(index=False), boxes):
        t = ts / 1000
        cup = any(e["start_s"] <= t < e["end_s"] for e in calls[call_id]["cups"])
        assert len(bs) >= cup  # in full view: boxed (a cup sliding in or out may add a box)
        for x0, y0, x1, y1 in bs:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        n_cup += cup
    assert n_cup > 0
    assert not any(boxes[i] for i, c in enumerate(frames["call_id"]) if not calls[c]["cups"])
