"""Model inference inside Spark's Python workers: each model loads once per worker, not per
batch, and scores pandas batches through `models.predictor.Predictor`, with the thread count
and forward batch sizes of `percolate.core.tuning`."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from percolate.core import tuning

_MODELS: dict[tuple, object] = {}


def pin_torch_threads(threads: int = tuning.TORCH_THREADS) -> None:
    """One intra-op thread per Spark task: the tasks already fill the cores."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this worker


def load_model(registry_uri: str, endpoint_url: str | None, role: str, version: str):
    """The registry's model `role`/`version`, cached for the life of this Python worker."""
    key = (registry_uri, endpoint_url, role, version)
    if key not in _MODELS:
        from models.registry import ModelRegistry
        from percolate.io.store import open_store

        pin_torch_threads()
        _MODELS[key] = ModelRegistry(open_store(registry_uri, endpoint_url)).load(role, version)
    return _MODELS[key]


def prefilter_batches(batches: Iterator, registry_uri: str, endpoint_url: str | None,
                      version: str, keep: list[str], survivors_at: float | None = None) -> Iterator:
    """Adds `prefilter_score`, where it peaks (`loc_x`, `loc_y` in [0, 1]) and the FLOPs the
    model spent on the frame (`prefilter_flops`, null when its spec does not say); drops the pixels.

    With `survivors_at` (the threshold) it also keeps `jpeg` of the frames scoring at least
    that (null for the others), so the heavy stage reads the survivors' pixels alone.
    """
    model = None
    for batch in batches:
        if model is None:
            model = load_model(registry_uri, endpoint_url, "prefilter", version)
        out = batch[keep].copy()
        for name, values in prefilter_columns(model, list(batch["jpeg"])).items():
            out[name] = values
        out["prefilter_flops"] = pd.array(out["prefilter_flops"], dtype="Int64")
        if survivors_at is not None:
            out["jpeg"] = batch["jpeg"].where(out["prefilter_score"].to_numpy() >= float(survivors_at), None)
        yield out


def prefilter_columns(model, jpegs: list[bytes]) -> dict[str, np.ndarray]:
    """The prefilter on a list of JPEGs: `prefilter_score`, `loc_x`, `loc_y` (where it peaks, in
    [0, 1]) and `prefilter_flops` (NaN where the spec does not say), one value per frame. The
    scoring path of frames already stored as JPEGs (the shadow scoring, evaluation, the
    benchmarks); the nightly sampler scores the decoder's frames (`prefilter_arrays`)."""
    score, loc_x, loc_y, flops = prefilter_arrays(model, model.decode_inputs(jpegs))
    return {"prefilter_score": score, "loc_x": loc_x, "loc_y": loc_y, "prefilter_flops": flops}


def prefilter_arrays(model, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The prefilter on its inputs (N x height x width x 3 uint8, as `model.decode_inputs`
    gives them or the decoder scaled them): score, loc_x, loc_y, FLOPs (NaN: unknown), float64."""
    scores, centers, flops = model.locate_inputs(inputs, tuning.PREFILTER_FORWARD_BATCH)
    return (np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(centers[:, 0], dtype=np.float64),
            np.asarray(centers[:, 1], dtype=np.float64), np.round(np.asarray(flops, dtype=np.float64).reshape(-1)))


_WARM: set[int] = set()


def warm_up(model) -> None:
    """One forward pass on blank inputs, once per model and worker: torch's kernels and CPU
    detection are set up (files read) before a confined decode child is forked to score."""
    if id(model) not in _WARM:
        model.locate_inputs(np.zeros((2, model.input.height, model.input.width, 3), np.uint8), 2)
        _WARM.add(id(model))


def heavy_batches(batches: Iterator, registry_uri: str, endpoint_url: str | None,
                  version: str, keep: list[str], reuse_tolerance: float,
                  chunk: int = tuning.HEAVY_CHUNK) -> Iterator:
    """Adds the heavy model's best class, its probability, the `none` probability, and
    `reused_from`: the frame of the same call whose output was reused (see models.reuse),
    or null when the model ran on this frame.

    Models whose input crops look at the prefilter's peak (`loc_x`, `loc_y`). Reuse needs
    each call's frames together and in frame order (`in_stable_batches`); out of order it
    only reuses less.
    """
    from models.reuse import InputReuse

    model, reuse = None, InputReuse(tolerance=reuse_tolerance)
    for batch in batches:
        if model is None:
            model = load_model(registry_uri, endpoint_url, "heavy", version)
        for start in range(0, max(len(batch), 1), chunk):
            yield classify_chunk(model, reuse, batch.iloc[start:start + chunk], keep)


def classify_chunk(model, reuse, batch: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """One chunk of frames through the heavy model, reusing outputs for unchanged inputs."""
    out = batch[keep].copy()
    n = len(batch)
    names = np.asarray(model.class_names, dtype=object)
    if not n:
        out["label"], out["score"], out["none_score"], out["reused_from"] = [], [], [], []
        return out
    centers = batch[["loc_x", "loc_y"]].to_numpy(dtype=np.float64)
    inputs = model.decode_inputs(list(batch["jpeg"]), centers)
    calls, frames = batch["call_id"].to_numpy(), batch["frame_index"].to_numpy()
    refs, run, reused_from = [], [], []
    for i in range(n):
        ref = reuse.match(calls[i], inputs[i])
        reused_from.append(None if ref is None else ref.frame_index)
        if ref is None:
            ref = reuse.remember(calls[i], frames[i], inputs[i])
            run.append(i)
        refs.append(ref)
    probs_run = np.asarray(model.predict_inputs(inputs[run], tuning.HEAVY_FORWARD_BATCH), dtype=np.float64)
    for j, i in enumerate(run):
        refs[i].output = probs_run[j]
    probs = np.stack([r.output for r in refs])
    best = probs[:, 1:].argmax(axis=1)
    out["label"] = names[best]
    out["score"] = probs[np.arange(n), best + 1]
    out["none_score"] = probs[:, 0]
    out["reused_from"] = pd.array(reused_from, dtype="Int32")
    return out
