"""Sampled frames -> prefilter scores -> heavy-model predictions for the frames that pass.

The models run inside the executors' Python workers (`percolate.inference`), loaded once
per worker from the registry by version. The nightly run and the shadow scoring score frames
in the decoder (`percolate.transforms.sampling.PrefilterStep`) and hand the heavy job the
survivors with their pixels (`survivor_rows`), so no JPEG is made of a frame the prefilter
rejects but for the audit's share (docs/tuning.md); `score_frames` scores frames already
stored as JPEGs (the golden set, the benchmarks' stages).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, functions as F

from percolate.core.tables import (HEAVY_INPUT_KEYS, HEAVY_OUTPUT, FRAME_KEY, PREFILTER_OUTPUT, PREFILTER_SCORES,
                                   SAMPLED_FRAMES, names, spark_schema)

# What the prefilter's workers return when they keep the survivors' pixels: the scores, and
# the sampled frame's decode mode and JPEG (null for a frame under the threshold).
_PIXELS = tuple(c for c in SAMPLED_FRAMES if c.name in ("decode_mode", "jpeg"))
PREFILTER_WITH_PIXELS = PREFILTER_OUTPUT + _PIXELS


def in_stable_batches(df: DataFrame, partitions: int) -> DataFrame:
    """Hash partitions sorted by key: the same frames meet in the same model batches on
    every run, so reruns give bit-identical scores; each call's frames come together and
    in order (what the heavy model's reuse of unchanged inputs needs).

    The nightly prefilter does without it (the shuffle of every frame's JPEG cost ~0.45
    CPU-ms a frame, docs/tuning.md): it scores each video's frames in the sampling task, in
    frame order; the prefilter's scores do not depend on batch composition beyond ~1e-8."""
    return df.repartition(max(2, partitions), "call_id").sortWithinPartitions("call_id", "frame_index")


def score_frames(frames: DataFrame, *, registry_uri: str, endpoint_url: str | None, version: str,
                 survivors_at: float | None = None) -> DataFrame:
    """Frames (with jpeg) -> one row per frame: prefilter score, where it peaks, FLOPs spent.

    With `survivors_at` (the threshold) the rows also carry `decode_mode` and, for the frames
    scoring at least that, `jpeg` (`PREFILTER_WITH_PIXELS`; see `survivor_rows`)."""
    from percolate.inference import prefilter_batches

    if survivors_at is None:
        keys, schema = names(FRAME_KEY), PREFILTER_OUTPUT
    else:
        keys, schema = names(FRAME_KEY) + ["decode_mode"], PREFILTER_WITH_PIXELS
    return frames.mapInPandas(lambda it: prefilter_batches(it, registry_uri, endpoint_url, version, keys, survivors_at),
                              spark_schema(schema))


def score_rows(scored: DataFrame) -> DataFrame:
    """The prefilter's hand-over (`PREFILTER_SCORES`) from `mark_passed(score_frames(...))`."""
    return scored.select(*names(PREFILTER_SCORES))


def survivor_rows(scored: DataFrame) -> DataFrame:
    """The heavy job's input from `mark_passed(score_frames(..., survivors_at=threshold))`:
    the frames that passed, with their score, location, decode mode and JPEG."""
    return scored.where("passed").select(*names(HEAVY_INPUT_KEYS), "jpeg")


def mark_passed(scores: DataFrame, threshold: float) -> DataFrame:
    """Flag the frames that go on to the heavy model."""
    return scores.withColumn("passed", F.col("prefilter_score") >= F.lit(float(threshold)))


def survivors(frames: DataFrame, scores: DataFrame) -> DataFrame:
    """Frames whose prefilter score passed, with that score and its location attached: a join
    that reads every frame's JPEG (what `survivor_rows` replaced; its test compares the two)."""
    passed = scores.where("passed").select("call_id", "frame_index", "prefilter_score", "loc_x", "loc_y")
    return frames.join(F.broadcast(passed), ["call_id", "frame_index"], "inner")


def classify_frames(frames: DataFrame, *, registry_uri: str, endpoint_url: str | None, version: str,
                    reuse_tolerance: float) -> DataFrame:
    """Heavy model outputs per frame. With `reuse_tolerance` > 0 a frame whose model input
    matches one the model already ran on in the same call reuses that output (`reused_from`);
    `frames` must then hold each call's frames together in frame order (`in_stable_batches`)."""
    from percolate.inference import heavy_batches

    keys = names(HEAVY_INPUT_KEYS)
    return frames.mapInPandas(lambda it: heavy_batches(it, registry_uri, endpoint_url, version, keys, reuse_tolerance),
                              spark_schema(HEAVY_OUTPUT))


def mark_detections(predictions: DataFrame, threshold: float) -> DataFrame:
    """A frame is a detection of `label` when its probability clears the heavy threshold."""
    return predictions.withColumn("is_detection", F.col("score") >= F.lit(float(threshold)))
