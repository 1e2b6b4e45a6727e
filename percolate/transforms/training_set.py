"""People's labels -> labelled frames to retrain on (`jobs/assemble_training.py`), and the
checks a training set must pass before a model is trained on it.

Point in time: a retrain as of date D reads only labels that had arrived by D (partition
dt <= D) and were known before D ended, about days of the last N weeks up to D; a rerun of
the same date reads the same labels, whatever arrived since.

Which frames a label names:
* a frame label (audit, imports with call_id): that frame; brand NO_BRAND means no brand in
  view (a negative); a rejected frame label says only what the frame is not, and is left out;
* a user-day label (the reorder button): the frames of that user and day that supported the
  detection (the heavy model's best brand = the label's brand with score >= the user-day
  rule's min_score): confirmed, they show the brand; rejected, they are the look-alikes the
  model was fooled by (negatives, the most useful kind).
A frame named by labels that disagree is left out and counted (`conflicts`).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from pyspark.sql import DataFrame, Window, functions as F

from percolate.core.tables import NO_BRAND

TRAINING_COLUMNS = ["day", "call_id", "user_id", "frame_index", "label", "source", "known_at"]


def point_in_time(labels: DataFrame, as_of: str, weeks: int) -> DataFrame:
    """Labels arrived by `as_of`, known before it ended, about the `weeks` weeks up to it."""
    first = (dt.date.fromisoformat(as_of) - dt.timedelta(weeks=int(weeks)) + dt.timedelta(days=1)).isoformat()
    end = (dt.date.fromisoformat(as_of) + dt.timedelta(days=1)).isoformat()
    return labels.where((F.col("dt") <= as_of) & (F.col("known_at") < F.lit(end).cast("timestamp"))
                        & F.col("day").between(first, as_of))


def frame_labels(labels: DataFrame, predictions: DataFrame) -> DataFrame:
    """One row per (frame, label) the labels give: TRAINING_COLUMNS (label null = no brand).

    `predictions`: frame_predictions rows (dt, call_id, user_id, frame_index, label, score,
    aggregation) of the labels' days."""
    frame = (labels.where(F.col("call_id").isNotNull() & (F.col("verdict") == "confirmed"))
             .select("day", "call_id", "user_id", "frame_index",
                     F.when(F.col("brand") == NO_BRAND, F.lit(None)).otherwise(F.col("brand")).alias("label"),
                     "source", "known_at"))
    min_score = F.get_json_object("aggregation", "$.min_score").cast("double")
    support = predictions.where(F.col("score") >= min_score).select(
        F.col("dt").alias("day"), "user_id", F.col("label").alias("brand"), "call_id", "frame_index")
    user_day = (labels.where(F.col("call_id").isNull()).select("day", "user_id", "brand", "verdict", "source",
                                                               "known_at")
                .join(support, ["day", "user_id", "brand"])
                .select("day", "call_id", "user_id", "frame_index",
                        F.when(F.col("verdict") == "confirmed", F.col("brand")).alias("label"), "source", "known_at"))
    return frame.unionByName(user_day)


def unmatched_user_days(labels: DataFrame, predictions: DataFrame) -> DataFrame:
    """Confirmed user-day labels naming a brand no frame of that user-day supported: the label
    and the model disagree about the whole day."""
    min_score = F.get_json_object("aggregation", "$.min_score").cast("double")
    support = (predictions.where(F.col("score") >= min_score)
               .select(F.col("dt").alias("day"), "user_id", F.col("label").alias("brand")).distinct())
    return (labels.where(F.col("call_id").isNull() & (F.col("verdict") == "confirmed"))
            .join(support, ["day", "user_id", "brand"], "left_anti"))


def settle(labelled: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(frames with one agreed label, frames whose labels disagree). Several labels agreeing on
    a frame become one row, from its earliest source."""
    key = ["day", "call_id", "frame_index"]
    counted = labelled.withColumn("_labels", F.size(F.collect_set(F.coalesce("label", F.lit(NO_BRAND)))
                                                    .over(Window.partitionBy(*key))))
    first = Window.partitionBy(*key).orderBy("known_at", "source")
    agreed = (counted.where(F.col("_labels") == 1).withColumn("_n", F.row_number().over(first))
              .where(F.col("_n") == 1).drop("_labels", "_n"))
    conflicts = counted.where(F.col("_labels") > 1).select(*key).distinct()
    return agreed, conflicts


def with_frames(labelled: DataFrame, frames: DataFrame, predictions: DataFrame) -> DataFrame:
    """The labelled frames with their JPEG and timestamp (`frames`: day, call_id, frame_index,
    ts_ms, jpeg) and what the model then said of them (champion_label / champion_score /
    champion_threshold: null for a frame the prefilter rejected)."""
    said = predictions.select(F.col("dt").alias("day"), "call_id", "frame_index",
                              F.col("label").alias("champion_label"), F.col("score").alias("champion_score"),
                              F.col("heavy_threshold").alias("champion_threshold"))
    return (labelled.join(frames, ["day", "call_id", "frame_index"])
            .join(said, ["day", "call_id", "frame_index"], "left"))


# -- checks on the assembled set (pandas: the set is what one machine trains on) -------------

def label_agreement(feedback: pd.DataFrame, unmatched: int) -> dict:
    """How far the labels agree with what the model said with confidence: on frames the model
    detected (score >= its threshold), the label names the same brand; a confirmed user-day
    label no frame supported counts as a disagreement. People correct a good model on a few
    per cent of these; a share of brands swapped shows up here first."""
    confident = feedback[feedback["champion_score"].fillna(-1) >= feedback["champion_threshold"].fillna(2)]
    agree = int((confident["label"].fillna(NO_BRAND) == confident["champion_label"]).sum())
    judged = len(confident) + int(unmatched)
    return {"agree": agree, "judged": judged, "agreement": agree / judged if judged else None}


def class_balance(frames: pd.DataFrame) -> dict:
    """Positive frames per brand, and the largest brand's share of them."""
    counts = frames["label"].dropna().value_counts()
    return {"per_brand": {str(k): int(v) for k, v in counts.items()}, "negatives": int(frames["label"].isna().sum()),
            "max_share": float(counts.max() / counts.sum()) if len(counts) else None}


def leakage(train: pd.DataFrame, evaluation_days: list[str], evaluation_calls: set[str]) -> dict:
    """Training frames from an evaluation day or call (must be none)."""
    days = sorted(set(train["day"]) & set(evaluation_days))
    calls = sorted(set(train["call_id"]) & set(evaluation_calls))
    return {"days": days, "calls": calls[:20], "frames": int(train["day"].isin(evaluation_days).sum()
                                                           + train["call_id"].isin(calls).sum())}
