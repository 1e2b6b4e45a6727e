"""Calibrating fitted models on held-apart calibration frames (the second step of training).

Scores go through the pipeline's own inference path (`models.predictor`), so the
thresholds hold for the numbers the nightly run computes:

* prefilter threshold: the highest whose recall on calibration cups has a Clopper-Pearson
  lower bound >= `target_recall`;
* an ensemble prefilter's early-exit gate (`models.thresholds.early_exit_gate`), set on the
  module; from then on calibration sees the prefilter as the pipeline runs it;
* heavy frame threshold for `target_precision` on the frames that pass the prefilter;
* the user-day rule (`models.thresholds.choose_aggregation`) over all calibration frames,
  grouped by user_id (call_id when absent) and day (when present).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from models.fit import FittedModel, as_predictor, class_targets, has_label
from models.flops import count_flops
from models.prefilter import PrefilterEnsemble, gated_flops
from models.preprocess import decode_batch
from models.thresholds import (choose_aggregation, early_exit_gate, heavy_predictions, heavy_threshold_for_precision,
                               prefilter_recall_at, prefilter_threshold_for_recall, roc_auc)

RULE_SCORES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)  # min_score candidates of the rule


def calibrate_models(prefilter: FittedModel, heavy: FittedModel, calib_frames: pd.DataFrame,
                     class_names: list[str], *, target_recall: float = 0.99, target_precision: float = 0.99,
                     confidence: float = 0.95, progress: Callable[[str], None] | None = print) -> dict:
    """Thresholds, gate and rule for the fitted pair; returns {"prefilter": {...}, "heavy": {...}},
    each with `threshold`, `flops_per_frame` and `metrics` (the heavy one with `aggregation`).

    Sets the early-exit gate on an ensemble prefilter's module and in its arch_kwargs.
    """
    say = progress or (lambda _m: None)
    class_names = [str(c) for c in class_names]
    p_in, h_in = prefilter.input, heavy.input
    ca_p = decode_batch(list(calib_frames["jpeg"]), p_in)
    calib_pos = has_label(calib_frames["label"])
    pf_flops = count_flops(prefilter.module, (3, p_in.height, p_in.width))  # every member: the worst case
    pf_predictor = as_predictor("prefilter", prefilter, ["cup"], pf_flops)
    pf_calib, ca_centers, _ = pf_predictor.locate_inputs(ca_p)
    pf_cal = prefilter_threshold_for_recall(pf_calib, calib_pos, target_recall, confidence)
    say(f"prefilter threshold {pf_cal['threshold']:.4f} recall {pf_cal['recall']:.4f} "
        f"(lower bound {pf_cal['recall_lower_bound']:.4f}) pass rate {pf_cal['pass_rate']:.3f}")

    pf = prefilter.module
    gate = {"gate": None, "open_rate": 1.0}
    flops_seen = np.full(len(ca_p), float(pf_flops))
    if isinstance(pf, PrefilterEnsemble) and len(pf.members) > 1:
        first = FittedModel(pf.members[0], "prefilter_cnn", {}, p_in)
        first_scores, _, _ = as_predictor("prefilter", first, ["cup"]).locate_inputs(ca_p)
        gate = early_exit_gate(first_scores, pf_calib, calib_pos, pf_cal["threshold"])
        if gate["gate"] is not None:
            pf.gate = prefilter.arch_kwargs["gate"] = gate["gate"]
            pf_calib, ca_centers, flops_seen = pf_predictor.locate_inputs(ca_p)
            pf_cal.update(prefilter_recall_at(pf_calib, calib_pos, pf_cal["threshold"], confidence))
        say(f"prefilter early exit: gate {gate['gate']}, opened by {gate['open_rate']:.3f} of calib frames; "
            f"recall {pf_cal['recall']:.4f} (lower bound {pf_cal['recall_lower_bound']:.4f}) "
            f"pass rate {pf_cal['pass_rate']:.3f}")
    n_members = len(pf.members) if isinstance(pf, PrefilterEnsemble) else 1
    pf_flops_expected = float(gated_flops(pf_flops, n_members, gate["open_rate"]))

    passing = pf_calib >= pf_cal["threshold"]
    true_idx = class_targets(calib_frames["label"], class_names)
    probs = np.zeros((len(calib_frames), len(class_names) + 1), np.float32)
    if passing.any():
        ca_h = decode_batch(list(calib_frames["jpeg"][passing]), h_in, ca_centers[passing])
        probs[passing] = as_predictor("heavy", heavy, class_names).predict_inputs(ca_h)
    hv_cal = heavy_threshold_for_precision(probs[passing], true_idx[passing], target_precision)
    pred_idx, score = heavy_predictions(probs)
    users = calib_frames["user_id"] if "user_id" in calib_frames.columns else calib_frames["call_id"]
    agg_in = pd.DataFrame({
        "user_id": users.to_numpy(),
        "true_brand": [class_names[i - 1] if i > 0 else None for i in true_idx],
        "pred_brand": [class_names[i - 1] if ok else None for i, ok in zip(pred_idx, passing)],
        "score": score,
    })
    if "day" in calib_frames.columns:
        agg_in["day"] = calib_frames["day"].to_numpy()
    grid = list(RULE_SCORES) + ([hv_cal["threshold"]] if hv_cal["achieved"] else [])
    agg = choose_aggregation(agg_in, target_precision, min_scores=grid)
    say(f"heavy frame threshold {hv_cal['threshold']:.4f} (precision {hv_cal['precision']:.4f}, "
        f"recall {hv_cal['recall']:.4f}); user-day rule k={agg['min_frames']} "
        f"s={agg['min_score']:.3f} precision {agg['precision']:.4f} recall {agg['recall']:.4f}")

    pos_pass = passing & (true_idx > 0)
    brand_acc = float((pred_idx[pos_pass] == true_idx[pos_pass]).mean()) if pos_pass.any() else float("nan")
    return {
        "prefilter": {
            "threshold": pf_cal["threshold"], "flops_per_frame": pf_flops,
            "metrics": {**{f"calib_{k}": v for k, v in pf_cal.items()}, "calib_auc": roc_auc(pf_calib, calib_pos),
                        "calib_gate": gate, "calib_flops_per_frame_expected": pf_flops_expected,
                        "calib_flops_per_frame_measured": float(np.mean(flops_seen)) if len(flops_seen) else None},
        },
        "heavy": {
            "threshold": hv_cal["threshold"], "flops_per_frame": count_flops(heavy.module, (3, h_in.height, h_in.width)),
            "aggregation": {"min_frames": int(agg["min_frames"]), "min_score": float(agg["min_score"])},
            "metrics": {**{f"calib_frame_{k}": v for k, v in hv_cal.items()},
                        **{f"calib_userday_{k}": v for k, v in agg.items()},
                        "calib_brand_accuracy_on_passing_positives": brand_acc},
        },
    }
