"""Sampled frames -> prefilter scores -> heavy-model predictions for the frames that pass.

The models run inside the executors' Python workers (`percolate.inference`), loaded once
per worker from the registry by version.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, functions as F

from percolate.core.tables import HEAVY_INPUT_KEYS, HEAVY_OUTPUT, FRAME_KEY, PREFILTER_OUTPUT, names, spark_schema


def in_stable_batches(df: DataFrame, partitions: int) -> DataFrame:
    """Hash partitions sorted by key: the same frames meet in the same model batches on
    every run, so reruns give bit-identical scores; each call's frames come together and
    in order (what the heavy model's reuse of unchanged inputs needs)."""
    return df.repartition(max(2, partitions), "call_id").sortWithinPartitions("call_id", "frame_index")


def score_frames(frames: DataFrame, *, registry_uri: str, endpoint_url: str | None, version: str) -> DataFrame:
    """Frames (with jpeg) -> one row per frame: prefilter score, where it peaks, FLOPs spent."""
    from percolate.inference import prefilter_batches

    keys = names(FRAME_KEY)
    return frames.mapInPandas(lambda it: prefilter_batches(it, registry_uri, endpoint_url, version, keys),
                              spark_schema(PREFILTER_OUTPUT))


def mark_passed(scores: DataFrame, threshold: float) -> DataFrame:
    """Flag the frames that go on to the heavy model."""
    return scores.withColumn("passed", F.col("prefilter_score") >= F.lit(float(threshold)))


def survivors(frames: DataFrame, scores: DataFrame) -> DataFrame:
    """Frames whose prefilter score passed, with that score and its location attached."""
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
