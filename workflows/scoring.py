"""Scoring processed days against their ground truth (generated days only).

Pure pandas/numpy: inputs are the stage outputs of one date (sampled frames, prefilter
scores, heavy predictions), the published user-day rows and the day's truth JSON.
`frame_table` joins them into one row per sampled frame; everything else reads that.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth.truth import label_at

NONE = "none"


def _ratio(num: float, den: float) -> float | None:
    return round(float(num) / float(den), 4) if den else None


def frame_table(frames: pd.DataFrame, scores: pd.DataFrame, predictions: pd.DataFrame,
                truth: dict) -> pd.DataFrame:
    """One row per sampled frame: truth, prefilter score and decision, heavy output.

    Columns: call_id, user_id, frame_index, ts_ms, background (the call's, when the truth
    names one), true_label (None = no cup), prefilter_score, passed, prefilter_flops (what
    the prefilter spent on the frame, when its scores say), label / score (the
    heavy model's best class and its probability; None when it did not see the frame),
    is_detection, predicted (label when it is a detection, else None), model_ran (the heavy
    model ran on the frame, rather than reusing its output for an unchanged input).
    """
    calls = {c["call_id"]: c for c in truth["calls"]}
    df = frames[["call_id", "user_id", "frame_index", "ts_ms"]].copy()
    df["background"] = [calls.get(c, {}).get("background") for c in df["call_id"]]
    df["true_label"] = [label_at(calls[c], t / 1000.0) if c in calls else None
                        for c, t in zip(df["call_id"], df["ts_ms"])]
    df = df.merge(scores[["call_id", "frame_index", "prefilter_score", "passed", "prefilter_flops"]],
                  on=["call_id", "frame_index"], how="left")
    predictions = predictions.assign(model_ran=predictions["reused_from"].isna())
    df = df.merge(predictions[["call_id", "frame_index", "label", "score", "is_detection", "model_ran"]],
                  on=["call_id", "frame_index"], how="left")
    df["model_ran"] = df["model_ran"].astype("boolean").fillna(False).astype(bool)
    df["passed"] = df["passed"].astype("boolean").fillna(False).astype(bool)
    df["is_detection"] = df["is_detection"].astype("boolean").fillna(False).astype(bool)
    df["prefilter_score"] = df["prefilter_score"].astype(float).fillna(0.0)
    df["label"] = df["label"].where(df["label"].notna(), None)
    df["predicted"] = df["label"].where(df["is_detection"], None)
    return df


def passing_negatives_by_background(df: pd.DataFrame, top: int = 5) -> list[dict]:
    """Where the frames without a cup that pass the prefilter come from: the `top`
    backgrounds by such frames, each with its frames without a cup and their pass rate.
    Empty when the table has no backgrounds (a truth that does not name them)."""
    if "background" not in df.columns or df["background"].isna().all():
        return []
    neg = df[df["true_label"].isna()]
    g = neg.groupby("background")["passed"].agg(frames="size", passed="sum").reset_index()
    g = g[g["passed"] > 0].sort_values(["passed", "background"], ascending=[False, True]).head(top)
    return [{"background": r.background, "frames": int(r.frames), "passed": int(r.passed),
             "pass_rate": _ratio(r.passed, r.frames)} for r in g.itertuples()]


def score_frames(df: pd.DataFrame, class_names: list[str]) -> dict:
    """Frame-level precision/recall of each stage, the pass rate and the brand accuracy."""
    positive = df["true_label"].notna()
    passed = df["passed"]
    seen = df["label"].notna()  # frames the heavy model classified
    detected = df["predicted"].notna()
    correct = detected & (df["predicted"] == df["true_label"])
    cups_seen = positive & seen
    return {
        "frames": int(len(df)),
        "frames_with_cup": int(positive.sum()),
        "prefilter": {
            "pass_rate": _ratio(passed.sum(), len(df)),
            "passed": int(passed.sum()),
            "recall": _ratio((passed & positive).sum(), positive.sum()),
            "precision": _ratio((passed & positive).sum(), passed.sum()),
            "negatives_passed_by_background": passing_negatives_by_background(df),
        },
        "heavy": {  # on the frames that reached it
            "frames_seen": int(seen.sum()),
            "model_runs": int(df["model_ran"].sum()),  # the rest reused the output for an unchanged input
            "run_rate": _ratio(df["model_ran"].sum(), len(df)),
            "detections": int(detected.sum()),
            "precision": _ratio(correct.sum(), detected.sum()),
            "recall": _ratio(correct.sum(), cups_seen.sum()),
            "cup_frames_seen": int(cups_seen.sum()),
            "brand_accuracy_on_cup_frames": _ratio((cups_seen & (df["label"] == df["true_label"])).sum(),
                                                   cups_seen.sum()),
            "chance_accuracy": _ratio(1, len(class_names) or 1),
        },
        "cascade": {
            "detections": int(detected.sum()),
            "precision": _ratio(correct.sum(), detected.sum()),
            "recall": _ratio(correct.sum(), positive.sum()),
        },
    }


def true_user_brands(df: pd.DataFrame) -> set[tuple[str, str]]:
    """(user_id, brand) pairs visible in at least one sampled frame of the day."""
    t = df.dropna(subset=["true_label"])
    return set(t[["user_id", "true_label"]].itertuples(index=False, name=None))


def predicted_user_brands(daily: pd.DataFrame) -> set[tuple[str, str]]:
    """Confirmed (user_id, brand) rows of user_brand_daily."""
    if not len(daily):
        return set()
    confirmed = daily[daily["confirmed"].astype(bool)]
    return set(confirmed[["user_id", "brand"]].itertuples(index=False, name=None))


def score_pairs(true_pairs: set, predicted: set, class_names: list[str]) -> dict:
    """Precision/recall of user-brand pairs, overall and per brand."""
    hits = true_pairs & predicted
    per_brand = {}
    for b in class_names:
        t = {p for p in true_pairs if p[1] == b}
        p = {q for q in predicted if q[1] == b}
        per_brand[b] = {"true": len(t), "predicted": len(p), "correct": len(t & p),
                        "precision": _ratio(len(t & p), len(p)), "recall": _ratio(len(t & p), len(t))}
    return {"true_user_brands": len(true_pairs), "predicted_user_brands": len(predicted),
            "correct": len(hits), "precision": _ratio(len(hits), len(predicted)),
            "recall": _ratio(len(hits), len(true_pairs)), "per_brand": per_brand}


def score_user_days(daily: pd.DataFrame, df: pd.DataFrame, class_names: list[str]) -> dict:
    """User-day precision/recall of the published rows against the brands truly seen."""
    return score_pairs(true_user_brands(df), predicted_user_brands(daily), class_names)


def confusion(df: pd.DataFrame, class_names: list[str]) -> tuple[list[str], np.ndarray]:
    """Counts of (true, predicted) over all sampled frames; "none" = no cup / no detection."""
    labels = [NONE] + list(class_names)
    index = {c: i for i, c in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(df["true_label"], df["predicted"]):
        m[index.get(t, 0) if t else 0, index.get(p, 0) if p else 0] += 1
    return labels, m


def pr_curve(scores, correct, n_positive: int) -> pd.DataFrame:
    """Precision and recall when keeping items with score >= each distinct threshold.

    `correct` marks kept items that count as true positives; recall is over
    `n_positive` (positives that can never be kept still count against recall).
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    s, c = scores[order], correct[order]
    tp = np.cumsum(c)
    kept = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)  # end of each tie group
    return pd.DataFrame({"threshold": s[last], "precision": tp[last] / kept[last],
                         "recall": tp[last] / max(n_positive, 1), "kept": kept[last]})


def flops_per_frame(prefilter_flops: float | None, heavy_flops: float | None, run_rate: float | None,
                    prefilter_max: float | None = None) -> dict:
    """FLOPs per sampled frame: the cascade (prefilter on all, heavy on the share it runs on)
    against running the heavy model on every frame. `prefilter_flops` is the mean the
    prefilter spent; `prefilter_max` its cost on a frame that runs all of it (an early-exit
    prefilter spends less on most frames), reported when given."""
    out = {"prefilter": None if prefilter_flops is None else int(round(float(prefilter_flops))),
           "heavy_alone": None if heavy_flops is None else int(heavy_flops), "cascade": None, "saving": None}
    if prefilter_max is not None:
        out["prefilter_max"] = int(prefilter_max)
    if prefilter_flops is None or heavy_flops is None or run_rate is None:
        return out
    cascade = float(prefilter_flops) + float(run_rate) * float(heavy_flops)
    out.update(cascade=int(round(cascade)), saving=round(float(heavy_flops) / cascade, 2) if cascade else None)
    return out


def prefilter_max_note(flops: dict) -> str:
    """", at most X M on a frame" when the prefilter's mean is below its worst case, else ""."""
    top, mean = flops.get("prefilter_max"), flops.get("prefilter")
    if top is None or mean is None or mean >= top:
        return ""
    return f", at most {top / 1e6:.1f} M on a frame"


def measured_prefilter_flops(table: pd.DataFrame, fallback: float | None) -> float | None:
    """Mean FLOPs the prefilter spent per frame of a frame table, or `fallback` (the spec's
    figure) when the scores did not record it (a model whose spec has no FLOPs)."""
    spent = pd.to_numeric(table["prefilter_flops"], errors="coerce").dropna()
    return float(spent.mean()) if len(spent) else fallback


def meets_targets(result: dict, targets: dict) -> dict:
    """Which of the requirement's targets a day's (or the pooled) result meets.

    The pass-rate target is on the share of sampled frames the heavy model runs on: the
    frames passing the prefilter, less those that reuse the output for an unchanged input.
    """
    u, f = result["user_day"], result["frame_level"]
    checks = {
        "user_day_precision": (u["precision"], ">=", targets["precision"]),
        "user_day_recall": (u["recall"], ">=", targets["recall"]),
        "heavy_run_rate": (f["heavy"]["run_rate"], "<=", targets["pass_rate"]),
    }
    out = {}
    for name, (value, op, target) in checks.items():
        ok = value is not None and (value >= target if op == ">=" else value <= target)
        out[name] = {"value": value, "target": f"{op} {target}", "met": bool(ok)}
    out["all_met"] = all(v["met"] for v in out.values())
    return out
