"""Model inference inside Spark's Python workers: models load once per worker, not per batch."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from jobs.common import pin_torch_threads

_MODELS: dict[tuple, object] = {}


def load_model(store_uri: str, endpoint_url: str | None, role: str, version: str):
    """The registry's model `role`/`version`, cached for the life of this Python worker."""
    key = (store_uri, endpoint_url, role, version)
    if key not in _MODELS:
        from models.registry import ModelRegistry
        from percolate.storage import open_store

        pin_torch_threads(1)
        _MODELS[key] = ModelRegistry(open_store(store_uri, endpoint_url)).load(role, version)
    return _MODELS[key]


def prefilter_batches(batches: Iterator, store_uri: str, endpoint_url: str | None,
                      version: str, keep: list[str]) -> Iterator:
    """Adds `prefilter_score` and where it peaks (`loc_x`, `loc_y` in [0, 1]); drops the pixels."""
    model = None
    for batch in batches:
        if model is None:
            model = load_model(store_uri, endpoint_url, "prefilter", version)
        scores, centers = model.locate_jpegs(list(batch["jpeg"]))
        out = batch[keep].copy()
        out["prefilter_score"] = np.asarray(scores, dtype=np.float64).reshape(-1)
        out["loc_x"] = np.asarray(centers[:, 0], dtype=np.float64) if len(out) else []
        out["loc_y"] = np.asarray(centers[:, 1], dtype=np.float64) if len(out) else []
        yield out


def heavy_batches(batches: Iterator, store_uri: str, endpoint_url: str | None,
                  version: str, keep: list[str]) -> Iterator:
    """Adds the heavy model's best class, its probability, and the 'none' probability.

    Models whose input crops look at the prefilter's peak (`loc_x`, `loc_y`).
    """
    model = None
    for batch in batches:
        if model is None:
            model = load_model(store_uri, endpoint_url, "heavy", version)
        out = batch[keep].copy()
        if len(batch):
            centers = batch[["loc_x", "loc_y"]].to_numpy(dtype=np.float64)
            probs = np.asarray(model.predict_jpegs(list(batch["jpeg"]), centers=centers), dtype=np.float64)
            best = probs[:, 1:].argmax(axis=1)
            names = np.asarray(model.class_names, dtype=object)
            out["label"] = names[best]
            out["score"] = probs[np.arange(len(best)), best + 1]
            out["none_score"] = probs[:, 0]
        else:
            out["label"], out["score"], out["none_score"] = [], [], []
        yield out
