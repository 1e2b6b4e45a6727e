"""Threshold calibration with binomial (Clopper-Pearson) bounds, and the user-day rule.

Conventions: a frame "passes" / "is detected" when score >= threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import beta


def binomial_lower_bound(successes: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound on a success rate (0 when no successes)."""
    if trials <= 0 or successes <= 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, successes, trials - successes + 1))


def prefilter_threshold_for_recall(scores, labels, target_recall: float = 0.99,
                                   confidence: float = 0.95) -> dict:
    """Highest threshold whose recall lower bound on the positives is >= target_recall.

    scores: (N,) prefilter probabilities; labels: (N,) bool/0-1 (positive = cup).
    If no threshold achieves the bound (too few positives), returns the threshold that
    keeps every positive with achieved=False.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    pos = np.sort(scores[labels])[::-1]
    n = len(pos)
    if n == 0:
        raise ValueError("no positives to calibrate recall on")
    achieved = False
    threshold = float(pos[-1])
    for k in range(1, n + 1):  # keep the top-k positives: threshold = k-th highest score
        if binomial_lower_bound(k, n, confidence) >= target_recall:
            threshold, achieved = float(pos[k - 1]), True
            break
    return {
        "threshold": threshold,
        **prefilter_recall_at(scores, labels, threshold, confidence),
        "achieved": achieved,
        "n_positives": n,
        "target_recall": target_recall,
        "confidence": confidence,
    }


def prefilter_recall_at(scores, labels, threshold: float, confidence: float = 0.95) -> dict:
    """Recall on the positives, its binomial lower bound, and the pass rate at `threshold`."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n, kept = int(labels.sum()), int((scores[labels] >= threshold).sum())
    return {"recall": kept / n if n else float("nan"),
            "recall_lower_bound": binomial_lower_bound(kept, n, confidence) if n else 0.0,
            "pass_rate": float((scores >= threshold).mean())}


def early_exit_gate(first_scores, scores, labels, threshold: float, margin: float = 1.0) -> dict:
    """The gate of an early-exit prefilter (PrefilterEnsemble): only frames whose first-member
    score reaches it run the other members.

    The gate is `margin` times the lowest first-member score among the positives the full
    model keeps at `threshold`, so on the calibration set it loses none of them; it is never
    above `threshold`, so a frame stopped by it could not have passed. Returns the gate
    (None when it would be 0, as when no positive is kept: every frame then runs every
    member), the share of frames that open it, and the pass rate once it is applied.
    """
    first = np.asarray(first_scores, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    kept = labels & (scores >= threshold)
    gate = min(float(first[kept].min()) * margin, float(threshold)) if kept.any() else 0.0
    if gate <= 0.0:
        return {"gate": None, "open_rate": 1.0, "pass_rate": float((scores >= threshold).mean()),
                "positives_kept": int(kept.sum()), "margin": margin}
    opened = first >= gate
    return {"gate": gate, "open_rate": float(opened.mean()),
            "pass_rate": float((opened & (scores >= threshold)).mean()),
            "positives_kept": int(kept.sum()), "margin": margin}


def heavy_predictions(probs) -> tuple[np.ndarray, np.ndarray]:
    """(N, C+1) probabilities -> (best class index in 1..C, its probability)."""
    probs = np.asarray(probs, dtype=np.float64)
    idx = probs[:, 1:].argmax(axis=1) + 1
    return idx, probs[np.arange(len(probs)), idx]


def heavy_threshold_for_precision(probs, true_idx, target_precision: float = 0.99,
                                  confidence: float | None = None, min_detections: int = 10) -> dict:
    """Frame-level threshold on the best brand probability for precision >= target.

    probs: (N, C+1) softmax (col 0 = none); true_idx: (N,) 0 = none, 1..C = brand.
    A frame is a detection of argmax_{1..C} when that probability >= threshold; it is
    correct when the brand equals true_idx. Picks the lowest threshold (highest recall)
    whose precision (its Clopper-Pearson lower bound when `confidence` is given) meets
    the target. If none does, the most precise cut keeping at least `min_detections`
    frames (ties: more recall), with achieved=False: the frame decision stays useful and
    the user-day rule carries the precision.
    """
    true_idx = np.asarray(true_idx).astype(int)
    pred, score = heavy_predictions(probs)
    order = np.argsort(-score, kind="stable")
    s, correct = score[order], (pred[order] == true_idx[order])
    n_true = int((true_idx > 0).sum())
    tp = np.cumsum(correct)
    best, fallback, fallback_prec = None, None, -1.0
    for k in range(1, len(s) + 1):
        if k < len(s) and s[k] == s[k - 1]:
            continue  # only cut between distinct scores
        prec = tp[k - 1] / k
        stat = prec if confidence is None else binomial_lower_bound(int(tp[k - 1]), k, confidence)
        if stat >= target_precision:
            best = k
        if k >= min(min_detections, len(s)) and prec >= fallback_prec:
            fallback, fallback_prec = k, prec
    achieved = best is not None
    best = best if achieved else fallback
    if best is None:  # nothing to calibrate on
        return {"threshold": 1.0, "precision": float("nan"), "recall": 0.0, "achieved": False,
                "n_detections": 0}
    return {
        "threshold": float(s[best - 1]),
        "precision": float(tp[best - 1] / best),
        "recall": float(tp[best - 1] / n_true) if n_true else float("nan"),
        "achieved": achieved,
        "n_detections": int(best),
    }


def _group_cols(frames: pd.DataFrame) -> list[str]:
    return ["user_id", "day"] if "day" in frames.columns else ["user_id"]


def apply_aggregation(frames: pd.DataFrame, rule: dict) -> pd.DataFrame:
    """User-day detections under rule {"min_frames": k, "min_score": s}.

    frames: one row per sampled frame with columns user_id, [day], pred_brand (str or
    None/NaN when no brand was predicted, e.g. the prefilter rejected it), score.
    Returns one row per detected (user_id, [day], brand) with n_frames and max_score.
    """
    keys = _group_cols(frames)
    hits = frames[frames["pred_brand"].notna() & (frames["score"] >= rule["min_score"])]
    g = hits.groupby(keys + ["pred_brand"])["score"].agg(n_frames="size", max_score="max")
    g = g[g["n_frames"] >= rule["min_frames"]].reset_index()
    return g.rename(columns={"pred_brand": "brand"})


def _truth(frames: pd.DataFrame) -> set:
    keys = _group_cols(frames)
    t = frames[frames["true_brand"].notna()]
    return set(map(tuple, t[keys + ["true_brand"]].itertuples(index=False, name=None)))


def choose_aggregation(frames: pd.DataFrame, target_precision: float = 0.99,
                       min_scores=None, max_frames: int = 5, recall_slack: float = 0.02) -> dict:
    """Pick the user-day rule (k frames at score >= s) for the precision target, with a margin.

    frames: pandas DataFrame, one row per sampled calibration frame (ALL frames of each
    user-day, including those the prefilter rejected) with columns
      user_id     - the user (use call_id when there is no user),
      day         - optional; user-day = (user_id, day), else user_id alone,
      true_brand  - the brand visible in the frame, or None,
      pred_brand  - the heavy model's best brand, or None if not run / rejected,
      score       - that brand's probability (ignored when pred_brand is None).
    Truth: a user-day has brand b when any of its frames truly shows b. A rule detects
    (user-day, b) when >= k frames were predicted b with score >= s.

    Zero false positives on a calibration set of a few hundred user-days cannot tell
    rules apart, so among the rules meeting the precision target whose recall is within
    `recall_slack` of the best, the one with the fewest near misses wins: wrong
    user-brands that a one-step laxer rule (k - 1 frames, or the next lower score)
    would report. Then the best recall, then the stricter rule.
    Returns {min_frames, min_score, precision, recall, near_misses, achieved,
    n_positive_user_days, n_detections}; if nothing meets the target: the most precise
    rule, achieved=False.
    """
    truth = _truth(frames)
    if min_scores is None:
        min_scores = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
    scores = sorted(set(float(x) for x in min_scores))
    keys = _group_cols(frames)
    detected = {}
    for k in range(1, max_frames + 1):
        for s in scores:
            det = apply_aggregation(frames, {"min_frames": k, "min_score": s})
            detected[k, s] = set(map(tuple, det[keys + ["brand"]].itertuples(index=False, name=None)))
    results = []
    for (k, s), dset in detected.items():
        tp = len(dset & truth)
        laxer = set()
        if k > 1:
            laxer |= detected[k - 1, s]
        if scores.index(s) > 0:
            laxer |= detected[k, scores[scores.index(s) - 1]]
        results.append({"min_frames": k, "min_score": s,
                        "precision": tp / len(dset) if dset else float("nan"),
                        "recall": tp / len(truth) if truth else float("nan"),
                        "near_misses": len(laxer - truth - dset),
                        "n_positive_user_days": len(truth), "n_detections": len(dset)})
    ok = [r for r in results if r["n_detections"] > 0 and r["precision"] >= target_precision]
    if ok:
        top = max(r["recall"] for r in ok)
        close = [r for r in ok if r["recall"] >= top - recall_slack]
        best = min(close, key=lambda r: (r["near_misses"], -r["recall"], -r["min_frames"], -r["min_score"]))
        return {**best, "achieved": True}
    scored = [r for r in results if r["n_detections"] > 0] or results
    best = max(scored, key=lambda r: (np.nan_to_num(r["precision"]), r["recall"]))
    return {**best, "achieved": False}


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank().to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
