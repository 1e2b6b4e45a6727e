"""Registering calibrated models (the third step of training): their specs and weights go
into the registry as new versions; no alias moves (that is `models.promote`)."""

from __future__ import annotations

import math

import numpy as np

from models.fit import FittedModel


def model_specs(prefilter: FittedModel, heavy: FittedModel, calibration: dict, class_names: list[str], *,
                training: dict) -> dict[str, dict]:
    """The two specs: architecture, input, classes, thresholds, rule, FLOPs, metrics, and
    `training` (dates, seed, frame counts, code version, the command that reproduces them).

    Nothing measured in seconds goes in: the same training gives the same spec.
    """
    specs = {}
    for role, fitted, classes in (("prefilter", prefilter, ["cup"]), ("heavy", heavy, list(class_names))):
        cal = calibration[role]
        history = [{k: v for k, v in h.items() if k != "seconds"} for h in fitted.history]
        spec = {
            "arch": fitted.arch, "arch_kwargs": fitted.arch_kwargs, "input": fitted.input.to_dict(),
            "class_names": [str(c) for c in classes], "threshold": cal["threshold"],
            "flops_per_frame": cal["flops_per_frame"], "training_dates": list(training.get("dates", [])),
            "code_version": training.get("code_version"),
            "training": {**training, "recipe": fitted.recipe},
            "metrics": {**cal["metrics"], "train_history": history},
        }
        if role == "heavy":
            spec["aggregation"] = cal["aggregation"]
        specs[role] = jsonable(spec)
    return specs


def register_models(registry, prefilter: FittedModel, heavy: FittedModel, specs: dict[str, dict]) -> dict[str, str]:
    """Register both; returns {"prefilter": version, "heavy": version}."""
    return {"prefilter": registry.register("prefilter", prefilter.module, specs["prefilter"]),
            "heavy": registry.register("heavy", heavy.module, specs["heavy"])}


def jsonable(obj):
    """Numpy scalars as Python numbers, NaN as None: a spec is plain JSON."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
