"""The audit sample: a small random share of each night's frames set aside for people to label,
and the prefilter's recall estimated from their labels.

A frame the prefilter rejects is never looked at again, so its recall on real traffic can only
be measured by looking at a random sample of what it rejected. Every night the publish draws,
per stratum, about a fixed number of frames (the budget; all of them when the stratum is
smaller):

* `prefilter_rejected`: frames the prefilter rejected (what its recall misses);
* `heavy_low_confidence`: frames that passed and on which the heavy model was unsure
  (best brand's probability in [LOW_CONFIDENCE)), the most useful frames to retrain on;
* `prefilter_passed`: the other frames that passed.

Each frame is drawn independently with its stratum's probability pi = min(1, budget / frames),
from a hash of (date, call, frame) (`draw`): a rerun draws the same frames. The nightly sampler
keeps the JPEG of a rejected frame only when the same hash is under a keep rate k fixed before
the day (`percolate.transforms.sampling.audit_keep_rate`, about three times the budget's
share): the rejected stratum is drawn with min(pi, k), so every drawn frame has its JPEG and
the probability recorded is the true one. Each audit row records its probability and the
stratum's size, so the estimate needs nothing else:

    positives of stratum h (one day)  ~  frames_h * (positives among labelled) / labelled
    recall  =  positives that passed / all positives

summed over the days and strata whose frames have labels. The 95% interval comes from the
strata's positive rates drawn from their Jeffreys Beta posteriors (Beta(k + 1/2, n - k + 1/2)),
seeded, and always holds the point estimate: rare misses in a huge rejected stratum get an
honest, wide interval, not a normal approximation's.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, functions as F

from percolate.core.tables import AUDIT_STRATA as STRATA
from percolate.core.tables import NO_BRAND

PASSED_STRATA = ("heavy_low_confidence", "prefilter_passed")
LOW_CONFIDENCE = (0.1, 0.95)  # the heavy model's best-brand probability counted as unsure
HASH_SPACE = 1 << 32  # the first 8 hex digits of the md5


def stratum_of(passed: F.Column, score: F.Column) -> F.Column:
    lo, hi = LOW_CONFIDENCE
    return (F.when(~passed, F.lit("prefilter_rejected"))
            .when(score.between(lo, hi) & (score < hi), F.lit("heavy_low_confidence"))
            .otherwise(F.lit("prefilter_passed")))


def draw(date: str, call_id: F.Column, frame_index: F.Column) -> F.Column:
    """A number in [0, 1) fixed by (date, call, frame): whether a frame is drawn does not
    depend on partitioning or on the run. `draw_value` is the same number outside Spark."""
    digest = F.md5(F.concat_ws("/", F.lit(date), call_id, frame_index.cast("string")))
    return F.conv(F.substring(digest, 1, 8), 16, 10).cast("double") / F.lit(float(HASH_SPACE))


def draw_value(date: str, call_id: str, frame_index: int) -> float:
    """`draw` for one frame, in plain Python (the sampler's keep decision)."""
    digest = hashlib.md5(f"{date}/{call_id}/{int(frame_index)}".encode()).hexdigest()
    return int(digest[:8], 16) / float(HASH_SPACE)


def sample_audit(scores: DataFrame, predictions: DataFrame, date: str, budgets: dict[str, int],
                 keep_rate: float = 1.0) -> DataFrame:
    """The night's audit rows from the prefilter's scores of every sampled frame and the heavy
    model's predictions of those that passed: call_id, user_id, frame_index, ts_ms, stratum,
    prefilter_score, passed, label, score, sampling_probability, stratum_frames.

    `keep_rate`: the share of rejected frames the sampler kept the JPEG of (`draw` under it);
    the rejected stratum is drawn with at most that probability."""
    unknown = set(budgets) - set(STRATA) or set(STRATA) - set(budgets)
    if unknown:
        raise ValueError(f"audit budgets must name exactly the strata {STRATA}, not {sorted(budgets)}")
    heavy = predictions.select("call_id", "frame_index", "label", "score")
    frames = (scores.select("call_id", "user_id", "frame_index", "ts_ms", "prefilter_score", "passed")
              .join(heavy, ["call_id", "frame_index"], "left")
              .withColumn("stratum", stratum_of(F.col("passed"), F.coalesce(F.col("score"), F.lit(0.0)))))
    sizes = frames.groupBy("stratum").agg(F.count("*").cast("int").alias("stratum_frames"))
    budget = F.create_map(*[x for s in STRATA for x in (F.lit(s), F.lit(int(budgets[s])))])
    return (frames.join(sizes, "stratum")
            .withColumn("sampling_probability",
                        F.least(F.lit(1.0), budget[F.col("stratum")].cast("double") / F.col("stratum_frames")))
            .withColumn("sampling_probability",
                        F.when(F.col("stratum") == "prefilter_rejected",
                               F.least(F.col("sampling_probability"), F.lit(float(keep_rate))))
                        .otherwise(F.col("sampling_probability")))
            .where(draw(date, F.col("call_id"), F.col("frame_index")) < F.col("sampling_probability"))
            .select("call_id", "user_id", "frame_index", "ts_ms", "stratum", "prefilter_score", "passed", "label",
                    "score", "sampling_probability", "stratum_frames"))


def audit_cells(audit: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per (day, stratum): frames in the stratum, audited frames, labelled ones and positives.

    `audit`: audit_frames rows with a `day` column; `labels`: frame labels (call_id,
    frame_index, day, brand, verdict, known_at). A frame is labelled by its latest confirmed
    label; it is positive unless that label's brand is NO_BRAND. A day counts only when every
    non-empty stratum of it has a labelled frame (half-labelled days would bias the estimate).
    """
    confirmed = labels[labels["verdict"] == "confirmed"].sort_values("known_at")
    latest = confirmed.drop_duplicates(["day", "call_id", "frame_index"], keep="last")
    latest = latest.assign(positive=latest["brand"] != NO_BRAND)[["day", "call_id", "frame_index", "positive"]]
    merged = audit.merge(latest, on=["day", "call_id", "frame_index"], how="left")
    cells = merged.groupby(["day", "stratum"]).agg(
        frames=("stratum_frames", "first"), audited=("call_id", "size"),
        labelled=("positive", "count"),
        positives=("positive", lambda s: int((s == True).sum()))).reset_index()  # noqa: E712
    complete = cells.groupby("day")["labelled"].min() > 0
    return cells[cells["day"].isin(complete[complete].index)].reset_index(drop=True)


def recall_estimate(cells: pd.DataFrame, draws: int = 4000, seed: int = 0) -> dict:
    """The prefilter's recall from the audit cells (see audit_cells): point estimate, 95%
    interval, and what it rests on. Without labelled days every figure is None."""
    out = {"estimate": None, "low": None, "high": None, "days": 0, "labelled_frames": 0, "positives": 0}
    if cells.empty:
        return out
    n = cells["labelled"].to_numpy(float)
    k = cells["positives"].to_numpy(float)
    size = cells["frames"].to_numpy(float)
    passed = cells["stratum"].isin(PASSED_STRATA).to_numpy()
    point = size * k / n
    out.update(days=int(cells["day"].nunique()), labelled_frames=int(n.sum()), positives=int(k.sum()))
    if point.sum() > 0:
        out["estimate"] = float(point[passed].sum() / point.sum())
    rates = np.random.default_rng(seed).beta(k + 0.5, n - k + 0.5, size=(draws, len(cells)))
    totals = rates * size
    recall = totals[:, passed].sum(axis=1) / totals.sum(axis=1)
    low, high = (float(x) for x in np.quantile(recall, [0.025, 0.975]))
    if out["estimate"] is None:  # no positive seen: the interval alone says something
        out["estimate"] = float(np.median(recall))
    # no miss seen among the rejected frames gives an estimate of 1, which the posterior draws
    # never reach: the interval is widened to it (as the modified Jeffreys interval does at x = 0)
    out["low"], out["high"] = min(low, out["estimate"]), max(high, out["estimate"])
    return out
