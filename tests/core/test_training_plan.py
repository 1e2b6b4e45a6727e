"""The training plan's day shapes, and the boxes and look-alike flags training frames carry."""

from __future__ import annotations

import pandas as pd
import pytest

from percolate.synth.generate import plan_day
from percolate.training import DayShape, TrainingPlan, object_boxes_at


def test_each_date_has_its_shape_and_the_last_calibration_day_looks_real():
    plan = TrainingPlan()
    assert plan.shape(plan.train_dates[0]) == plan.train_shape
    real = plan.shape(plan.calib_dates[-1])
    assert real.max_seconds >= 60 and real.cup_share < plan.train_shape.cup_share
    with pytest.raises(ValueError):
        TrainingPlan(calib_dates=("2026-01-05",), calib_shapes=())
    assert DayShape(1, 4.0, 7.0, 0.5, 0.5).calls == 1


def test_boxes_and_lookalike_flags_follow_the_truth():
    truth = plan_day("2026-01-09", 24, seed=3, backgrounds="train", min_seconds=6, max_seconds=12,
                     cup_share=0.6, distractor_share=0.9)
    rows = [{"call_id": c["call_id"], "ts_ms": t * 1000} for c in truth["calls"]
            for t in range(int(c["duration_s"]))]
    frames = pd.DataFrame(rows)
    looks = ("unknown_cup", "plain_mug")
    boxes, flags = object_boxes_at(truth, frames, looks)
    calls = {c["call_id"]: c for c in truth["calls"]}
    n_cup = n_look = 0
    for (call_id, ts), bs, flag in zip(frames.itertuples(index=False), boxes, flags):
        t = ts / 1000
        cup = any(e["start_s"] <= t < e["end_s"] for e in calls[call_id]["cups"])
        look = any(d["start_s"] <= t < d["end_s"] and d["kind"] in looks for d in calls[call_id]["distractors"])
        assert flag == look
        assert len(bs) >= cup + look  # in full view: boxed (objects sliding in or out may add boxes)
        for x0, y0, x1, y1 in bs:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        n_cup += cup
        n_look += look
    assert n_cup > 0 and n_look > 0
    none_boxes, none_flags = object_boxes_at(truth, frames, ())
    assert not any(none_flags)
    assert all(len(b) <= len(a) for a, b in zip(boxes, none_boxes))
