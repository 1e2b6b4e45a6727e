import numpy as np
import pandas as pd
import pytest

from models.thresholds import (apply_aggregation, binomial_lower_bound, choose_aggregation, early_exit_gate,
                                heavy_threshold_for_precision, prefilter_recall_at, prefilter_threshold_for_recall)


def test_binomial_lower_bound():
    assert binomial_lower_bound(0, 10) == 0.0
    assert binomial_lower_bound(10, 10, 0.95) == pytest.approx(0.05 ** (1 / 10))
    assert binomial_lower_bound(299, 299, 0.95) >= 0.99 > binomial_lower_bound(298, 298, 0.95)
    assert binomial_lower_bound(50, 100) < 0.5


def test_prefilter_threshold_meets_its_bound():
    rng = np.random.default_rng(0)
    pos, neg = rng.beta(5, 2, 2000), rng.beta(2, 5, 8000)
    scores = np.r_[pos, neg]
    labels = np.r_[np.ones(2000, bool), np.zeros(8000, bool)]
    r = prefilter_threshold_for_recall(scores, labels, target_recall=0.99, confidence=0.95)
    assert r["achieved"] and r["recall_lower_bound"] >= 0.99 and r["recall"] >= 0.99
    assert 0 < r["pass_rate"] < 1
    # the highest such threshold: one positive more cut would break the bound
    assert r["threshold"] > 0
    fresh = rng.beta(5, 2, 200_000)
    assert (fresh >= r["threshold"]).mean() >= 0.99


def test_early_exit_gate_keeps_every_kept_positive_and_cuts_work():
    rng = np.random.default_rng(1)
    n_pos, n_neg = 1000, 9000
    labels = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    first = np.r_[rng.beta(6, 2, n_pos), rng.beta(1.2, 6, n_neg)]  # one member's score
    scores = np.clip(first + rng.normal(0, 0.08, len(first)), 0, 1)  # the ensemble's, mostly agreeing
    thr = prefilter_threshold_for_recall(scores, labels, 0.99)["threshold"]
    g = early_exit_gate(first, scores, labels, thr)
    kept = labels & (scores >= thr)
    opened = first >= g["gate"]
    assert 0 < g["gate"] <= thr and g["positives_kept"] == kept.sum()
    assert opened[kept].all()  # no positive the full model keeps is stopped
    assert g["open_rate"] == pytest.approx(opened.mean()) and g["open_rate"] < 0.5
    assert g["pass_rate"] <= (scores >= thr).mean()
    assert prefilter_recall_at(np.where(opened, scores, first), labels, thr)["recall"] == kept.sum() / n_pos
    # never above the threshold, so a stopped frame (first score < gate) cannot pass
    assert early_exit_gate(np.full(4, 0.9), np.full(4, 0.5), np.ones(4, bool), 0.5)["gate"] == 0.5
    assert early_exit_gate(first, scores, np.zeros(len(first), bool), thr)["gate"] is None
    assert early_exit_gate(first, scores, labels, thr, margin=0.5)["gate"] == pytest.approx(g["gate"] / 2)


def test_prefilter_threshold_not_achievable_keeps_all_positives():
    scores = np.array([0.9, 0.8, 0.3, 0.1, 0.05])
    labels = np.array([1, 1, 1, 0, 0])
    r = prefilter_threshold_for_recall(scores, labels, 0.99)
    assert not r["achieved"] and r["threshold"] == 0.3 and r["recall"] == 1.0


def test_heavy_threshold_for_precision():
    rng = np.random.default_rng(1)
    n = 4000
    true = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), true] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    r = heavy_threshold_for_precision(probs, true, target_precision=0.99)
    assert r["achieved"] and r["precision"] >= 0.99 and 0 < r["recall"] < 1
    pred = probs[:, 1:].argmax(1) + 1
    score = probs[np.arange(n), pred]
    det = score >= r["threshold"]
    assert (pred[det] == true[det]).mean() >= 0.99


def test_choose_aggregation_takes_best_recall_then_the_stricter_rule():
    rows = []
    # 20 users truly with brand "a": 3 confident frames each
    for u in range(20):
        rows += [{"user_id": f"t{u}", "true_brand": "a", "pred_brand": "a", "score": 0.97}] * 3
    # 10 users without a brand: one spurious confident frame each
    for u in range(10):
        rows += [{"user_id": f"f{u}", "true_brand": None, "pred_brand": "a", "score": 0.97},
                 {"user_id": f"f{u}", "true_brand": None, "pred_brand": None, "score": 0.0}]
    frames = pd.DataFrame(rows)
    rule = choose_aggregation(frames, target_precision=0.99, min_scores=[0.5, 0.9, 0.99])
    # k=1 is imprecise (the spurious frames); k=2 and k=3 at score 0.5 or 0.9 are all precise with
    # full recall: the strictest of those keeps a margin. Score 0.99 loses every user.
    assert rule["achieved"] and (rule["min_frames"], rule["min_score"]) == (3, 0.9)
    assert rule["precision"] == 1.0 and rule["recall"] == 1.0
    det = apply_aggregation(frames, rule)
    assert set(det.user_id) == {f"t{u}" for u in range(20)}


def test_choose_aggregation_gives_up_a_little_recall_to_stay_clear_of_near_misses():
    rows = []
    for u in range(49):  # clear positives: 4 confident frames
        rows += [{"user_id": f"t{u}", "true_brand": "a", "pred_brand": "a", "score": 0.97}] * 4
    rows += [{"user_id": "hard", "true_brand": "a", "pred_brand": "a", "score": 0.97}] * 2
    for u in range(10):  # one confident wrong frame each: k=2 is exact but one step from 10 errors
        rows += [{"user_id": f"f{u}", "true_brand": None, "pred_brand": "a", "score": 0.97}]
    frames = pd.DataFrame(rows)
    rule = choose_aggregation(frames, target_precision=0.99, min_scores=[0.5, 0.9, 0.95])
    assert (rule["min_frames"], rule["min_score"]) == (4, 0.95)
    assert rule["near_misses"] == 0 and rule["recall"] == pytest.approx(49 / 50)
    strict = choose_aggregation(frames, target_precision=0.99, min_scores=[0.5, 0.9, 0.95], recall_slack=0.0)
    assert (strict["min_frames"], strict["recall"], strict["near_misses"]) == (2, 1.0, 10)


def test_heavy_threshold_falls_back_to_the_most_precise_useful_cut():
    from models.thresholds import heavy_threshold_for_precision

    rng = np.random.default_rng(3)
    n = 400
    true_idx = rng.integers(0, 4, n)
    probs = rng.dirichlet(np.ones(4), n)  # a model no better than chance: 99% is out of reach
    out = heavy_threshold_for_precision(probs, true_idx, 0.99, confidence=0.95)
    assert out["achieved"] is False
    assert out["n_detections"] >= 10
    best = probs[:, 1:].argmax(1) + 1
    score = probs[np.arange(n), best]
    det = score >= out["threshold"]
    assert det.sum() == out["n_detections"]
    assert (best[det] == true_idx[det]).mean() == pytest.approx(out["precision"])
