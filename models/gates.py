"""Champion/challenger: may a challenger pair (prefilter, heavy) replace `production`?

The decision is a pure function of two evaluations on the same held-out days (what
`percolate evaluate` records in the registry) and the gates. Every gate is configured
explicitly; a gate left unset fails, so a missing setting never promotes a model
("fails closed"). The figures:

- user-day precision, judged by its 95% lower bound (Wilson): the requirement is
  ">= 99%" per user and day, and a point estimate on a few hundred user-brands cannot show it;
- user-day recall (point estimate) and each brand's recall, against the champion's;
- cost per frame: FLOPs per sampled frame of the cascade (prefilter on every frame, heavy
  model on the share it runs on). CPU seconds would mostly measure decoding, which a model
  does not change, and the machine's load; FLOPs are what the models decide;
- not worse than the champion beyond the evaluation's own confidence interval: the
  champion's precision and recall must not lie above the challenger's 95% upper bounds.

Without a champion evaluated on the same days the comparison gates fail (closed too);
`percolate models promote --force --reason` is the recorded way around a failed gate.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

Z95 = 1.959964


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of k successes in n trials (None for n = 0)."""
    if n <= 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Gates:
    """The promotion gates; None = not configured, which fails the gate."""

    min_precision_lower95: float | None = None  # user-day precision's 95% lower bound, e.g. 0.99
    min_recall: float | None = None  # user-day recall, e.g. 0.90
    max_brand_recall_drop: float | None = None  # points of any brand's recall lost, e.g. 0.02
    max_cost_increase: float | None = None  # FLOPs per sampled frame, relative, e.g. 0.10
    not_worse_beyond_ci: bool | None = None  # champion's figures within the challenger's upper bounds
    # the training set's gates (a weekly retrain, before anything is trained)
    min_label_agreement: float | None = None  # labels vs the model's confident outputs, e.g. 0.90
    max_class_share: float | None = None  # largest brand's share of positive frames, e.g. 0.5
    max_label_conflicts: float | None = None  # share of labelled frames whose labels disagree, e.g. 0.05

    @classmethod
    def from_mapping(cls, data: dict) -> "Gates":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown gates {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: data[k] for k in known if data.get(k) is not None})

    @classmethod
    def from_file(cls, path: str | Path) -> "Gates":
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: want a JSON object of gates")
        return cls.from_mapping(data)


def summarize(result: dict) -> dict:
    """The figures the gates read, from a `percolate evaluate` result (its pooled days)."""
    pooled = result["pooled"]
    u = pooled["user_day"]
    precision_ci = wilson(u["correct"], u["predicted_user_brands"])
    recall_ci = wilson(u["correct"], u["true_user_brands"])
    return {
        "dates": list(result["dates"]),
        "models": {role: m["version"] for role, m in result["models"].items()},
        "true_user_brands": u["true_user_brands"], "predicted_user_brands": u["predicted_user_brands"],
        "correct": u["correct"], "precision": u["precision"], "recall": u["recall"],
        "precision_ci": list(precision_ci) if precision_ci else None,
        "recall_ci": list(recall_ci) if recall_ci else None,
        "brand_recall": {b: s["recall"] for b, s in u["per_brand"].items() if s["true"]},
        "flops_per_frame": pooled["flops_per_sampled_frame"].get("cascade"),
        "prefilter_pass_rate": pooled["frame_level"]["prefilter"]["pass_rate"],
        "heavy_run_rate": pooled["frame_level"]["heavy"]["run_rate"],
        # CPU seconds of the model stages per sampled frame (decoding is the same for any model)
        "model_cpu_s_per_frame": model_cpu_per_frame(pooled),
        "report": result.get("report"),  # the evaluation's HTML page: its PR curves
        # user-day precision and recall per sampling rate (workflows.rate_recall): the nightly
        # budget step's expected recall at the rate it picks
        "recall_by_rate": pooled.get("recall_by_rate") or {},
    }


def model_cpu_per_frame(pooled: dict) -> float | None:
    """CPU seconds of the prefilter and heavy stages per sampled frame (None when unknown)."""
    cpu, frames = pooled.get("cpu_s") or {}, (pooled.get("frame_level") or {}).get("frames")
    if not frames or "prefilter" not in cpu:
        return None
    return (float(cpu["prefilter"]) + float(cpu.get("heavy") or 0.0)) / frames


def _gate(name: str, passed: bool, value, limit, why: str) -> dict:
    return {"gate": name, "passed": bool(passed), "value": value, "limit": limit, "why": why}


def decide(challenger: dict, champion: dict | None, gates: Gates) -> dict:
    """Each gate's verdict and the decision: promote only when every gate passes."""
    out = []

    def unset(name: str) -> dict:
        return _gate(name, False, None, None, "gate not configured (fails closed)")

    lo = (challenger.get("precision_ci") or [None])[0]
    if gates.min_precision_lower95 is None:
        out.append(unset("precision"))
    else:
        ok = lo is not None and lo >= gates.min_precision_lower95
        out.append(_gate("precision", ok, lo, gates.min_precision_lower95,
                         f"95% lower bound of user-day precision {_pct(lo)} (point {_pct(challenger.get('precision'))},"
                         f" {challenger.get('predicted_user_brands')} predicted user-brands)"))
    recall = challenger.get("recall")
    if gates.min_recall is None:
        out.append(unset("recall"))
    else:
        ok = recall is not None and recall >= gates.min_recall
        out.append(_gate("recall", ok, recall, gates.min_recall, f"user-day recall {_pct(recall)}"))

    same_days = champion is not None and sorted(champion["dates"]) == sorted(challenger["dates"])
    no_champion = "no champion evaluated on the same days (fails closed)"
    if gates.max_brand_recall_drop is None:
        out.append(unset("brand_recall"))
    elif not same_days:
        out.append(_gate("brand_recall", False, None, gates.max_brand_recall_drop, no_champion))
    else:
        drops = {b: r - (challenger["brand_recall"].get(b) or 0.0) for b, r in champion["brand_recall"].items()
                 if r is not None}
        worst = max(drops, key=drops.get) if drops else None
        drop = drops[worst] if worst else 0.0
        out.append(_gate("brand_recall", drop <= gates.max_brand_recall_drop + 1e-12, round(drop, 4),
                         gates.max_brand_recall_drop,
                         f"largest drop {drop * 100:.1f} points ({worst})" if worst else "no brand to compare"))
    if gates.max_cost_increase is None:
        out.append(unset("cost"))
    elif not same_days or not champion.get("flops_per_frame") or challenger.get("flops_per_frame") is None:
        out.append(_gate("cost", False, None, gates.max_cost_increase,
                         no_champion if not same_days else "FLOPs per frame unknown (fails closed)"))
    else:
        rise = challenger["flops_per_frame"] / champion["flops_per_frame"] - 1
        out.append(_gate("cost", rise <= gates.max_cost_increase + 1e-12, round(rise, 4), gates.max_cost_increase,
                         f"FLOPs per sampled frame {challenger['flops_per_frame'] / 1e6:.2f} M vs "
                         f"{champion['flops_per_frame'] / 1e6:.2f} M ({rise * 100:+.1f}%)"))
    if gates.not_worse_beyond_ci is None:
        out.append(unset("not_worse"))
    elif not gates.not_worse_beyond_ci:
        out.append(_gate("not_worse", True, None, False, "not required by the configuration"))
    elif not same_days:
        out.append(_gate("not_worse", False, None, True, no_champion))
    else:
        worse = [f"{k} {_pct(champion[k])} above the challenger's upper bound {_pct(challenger[f'{k}_ci'][1])}"
                 for k in ("precision", "recall")
                 if champion.get(k) is not None and (not challenger.get(f"{k}_ci")
                                                     or champion[k] > challenger[f"{k}_ci"][1] + 1e-12)]
        out.append(_gate("not_worse", not worse, None, True,
                         "; ".join(worse) or "the champion's precision and recall lie within the challenger's "
                                             "95% intervals or below"))
    promote = all(g["passed"] for g in out)
    failed = [g["gate"] for g in out if not g["passed"]]
    return {"promote": promote, "gates": out, "configured": asdict(gates),
            "why": "every gate passed" if promote else f"failed: {', '.join(failed)}"}


def decide_training_set(checks: dict, gates: Gates) -> list[dict]:
    """The training set's gates, from `workflows.retrain`'s checks: labels agree with the
    model's confident outputs, no brand dominates, few frames with disagreeing labels, and no
    frame from the evaluation days (always required)."""
    out = []
    agreement = checks["label_agreement"]["agreement"]
    if gates.min_label_agreement is None:
        out.append(_gate("label_agreement", False, None, None, "gate not configured (fails closed)"))
    else:
        out.append(_gate("label_agreement", agreement is not None and agreement >= gates.min_label_agreement,
                         agreement, gates.min_label_agreement,
                         f"labels agree with the model's confident outputs on {checks['label_agreement']['agree']}"
                         f" of {checks['label_agreement']['judged']} ({_pct(agreement)})"))
    share = checks["class_balance"]["max_share"]
    if gates.max_class_share is None:
        out.append(_gate("class_balance", False, None, None, "gate not configured (fails closed)"))
    else:
        out.append(_gate("class_balance", share is not None and share <= gates.max_class_share, share,
                         gates.max_class_share, f"largest brand's share of positive frames {_pct(share)}"))
    conflicts = checks["conflicts"]["share"]
    if gates.max_label_conflicts is None:
        out.append(_gate("label_conflicts", False, None, None, "gate not configured (fails closed)"))
    else:
        out.append(_gate("label_conflicts", conflicts <= gates.max_label_conflicts, conflicts,
                         gates.max_label_conflicts, f"{checks['conflicts']['frames']} labelled frames left out: "
                                                    f"their labels disagree ({_pct(conflicts)})"))
    leaked = checks["leakage"]
    out.append(_gate("leakage", leaked["frames"] == 0, leaked["frames"], 0,
                     "no training frame from an evaluation day or call" if leaked["frames"] == 0 else
                     f"{leaked['frames']} training frames from evaluation days {leaked['days']} / calls "
                     f"{leaked['calls']}"))
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"
