"""Scoring a processed day against its ground truth (generated days only).

Pure pandas: inputs are the stage outputs of one date and the day's truth JSON.
"""

from __future__ import annotations

import pandas as pd

from percolate.synth.truth import label_at


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def frame_truth(frames: pd.DataFrame, truth: dict) -> pd.DataFrame:
    """Sampled frames (call_id, user_id, frame_index, ts_ms) with the true label (None = no cup)."""
    calls = {c["call_id"]: c for c in truth["calls"]}
    out = frames[["call_id", "user_id", "frame_index", "ts_ms"]].copy()
    out["true_label"] = [label_at(calls[c], t / 1000.0) if c in calls else None
                         for c, t in zip(out["call_id"], out["ts_ms"])]
    return out


def score_frames(frames: pd.DataFrame, scores: pd.DataFrame, predictions: pd.DataFrame,
                 truth: dict) -> dict:
    """Frame-level precision/recall of the prefilter and of the whole cascade."""
    df = frame_truth(frames, truth)
    df = df.merge(scores[["call_id", "frame_index", "passed"]], on=["call_id", "frame_index"], how="left")
    pred = predictions[["call_id", "frame_index", "label", "score", "is_detection"]]
    df = df.merge(pred, on=["call_id", "frame_index"], how="left")
    df["passed"] = df["passed"].astype("boolean").fillna(False).astype(bool)
    df["predicted"] = df["label"].where(df["is_detection"].astype("boolean").fillna(False).astype(bool))
    positive = df["true_label"].notna()
    detected = df["predicted"].notna()
    cups_seen = positive & df["label"].notna()  # cup frames the heavy model classified
    correct = detected & (df["predicted"] == df["true_label"])
    return {
        "frames": int(len(df)),
        "frames_with_cup": int(positive.sum()),
        "prefilter": {
            "pass_rate": _ratio(df["passed"].sum(), len(df)),
            "recall": _ratio((df["passed"] & positive).sum(), positive.sum()),
            "precision": _ratio((df["passed"] & positive).sum(), df["passed"].sum()),
        },
        "heavy": {
            "cup_frames_seen": int(cups_seen.sum()),
            "brand_accuracy_on_cup_frames": _ratio((cups_seen & (df["label"] == df["true_label"])).sum(),
                                                   cups_seen.sum()),
            "chance_accuracy": _ratio(1, len(truth.get("classes", [])) or 1),
        },
        "cascade": {
            "detections": int(detected.sum()),
            "precision": _ratio(correct.sum(), detected.sum()),
            "recall": _ratio(correct.sum(), positive.sum()),
            "chance_precision": _ratio(positive.sum(), len(df) * max(1, len(truth.get("classes", [])))),
        },
    }


def score_user_days(daily: pd.DataFrame, truth: dict, frames: pd.DataFrame) -> dict:
    """User-day precision/recall: confirmed (user, brand) rows vs brands visible in the sampled frames."""
    df = frame_truth(frames, truth)
    true_pairs = set(df.dropna(subset=["true_label"])[["user_id", "true_label"]].itertuples(index=False, name=None))
    confirmed = daily[daily["confirmed"].astype(bool)] if len(daily) else daily
    predicted = set(confirmed[["user_id", "brand"]].itertuples(index=False, name=None)) if len(daily) else set()
    hits = len(true_pairs & predicted)
    return {"true_user_brands": len(true_pairs), "predicted_user_brands": len(predicted),
            "precision": _ratio(hits, len(predicted)), "recall": _ratio(hits, len(true_pairs))}
