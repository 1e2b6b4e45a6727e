"""The audit sample: who is drawn, with what probability, and the recall estimate it gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from percolate.transforms.audit import audit_cells, recall_estimate, sample_audit

BUDGETS = {"prefilter_rejected": 50, "heavy_low_confidence": 1000, "prefilter_passed": 1000}


def _scores_and_predictions(spark, rejected: int = 500, passed: int = 40):
    scores = [("c1", "u1", i, i * 1000, 0.01, False) for i in range(rejected)]
    scores += [("c1", "u1", rejected + i, (rejected + i) * 1000, 0.9, True) for i in range(passed)]
    preds = [("c1", rejected + i, "Brewhaus", 0.5 if i % 2 else 0.99) for i in range(passed)]
    return (spark.createDataFrame(scores, "call_id string, user_id string, frame_index int, ts_ms long, "
                                          "prefilter_score double, passed boolean"),
            spark.createDataFrame(preds, "call_id string, frame_index int, label string, score double"))


@pytest.mark.spark
def test_each_stratum_is_drawn_with_its_probability_and_a_rerun_draws_the_same_frames(spark):
    scores, preds = _scores_and_predictions(spark)
    first = sample_audit(scores, preds, "2026-11-02", BUDGETS).toPandas()
    again = sample_audit(scores.repartition(7), preds, "2026-11-02", BUDGETS).toPandas()
    key = ["call_id", "frame_index"]
    pd.testing.assert_frame_equal(first.sort_values(key).reset_index(drop=True),
                                  again.sort_values(key).reset_index(drop=True))
    by = first.groupby("stratum").agg(n=("call_id", "size"), p=("sampling_probability", "first"),
                                      size=("stratum_frames", "first"))
    assert by.loc["prefilter_rejected", "size"] == 500 and by.loc["prefilter_rejected", "p"] == pytest.approx(0.1)
    assert 25 <= by.loc["prefilter_rejected", "n"] <= 80  # ~50 of 500 at p = 0.1
    # budgets above a stratum's size take every frame of it: 20 unsure, 20 confident
    assert by.loc["heavy_low_confidence", ["n", "size", "p"]].tolist() == [20, 20, 1.0]
    assert by.loc["prefilter_passed", ["n", "size", "p"]].tolist() == [20, 20, 1.0]
    other_day = sample_audit(scores, preds, "2026-11-03", BUDGETS).toPandas()
    assert set(other_day.query("stratum == 'prefilter_rejected'")["frame_index"]) != \
        set(first.query("stratum == 'prefilter_rejected'")["frame_index"])


@pytest.mark.spark
def test_the_sampler_kept_jpegs_of_every_rejected_frame_drawn_and_the_probability_is_the_true_one(spark):
    """The sampler keeps a rejected frame's JPEG when `draw_value` is under the keep rate; the
    audit draws the rejected stratum with min(its probability, the keep rate), with the same
    draw, in Spark: every frame it draws was kept, and the recorded probability is exact."""
    from pyspark.sql import functions as F

    from percolate.transforms.audit import draw, draw_value

    scores, preds = _scores_and_predictions(spark, rejected=2000)
    date = "2026-11-02"
    twins = scores.select("call_id", "frame_index", draw(date, F.col("call_id"), F.col("frame_index")).alias("u"))
    for row in twins.collect():
        assert row.u == draw_value(date, row.call_id, row.frame_index)
    kept = {i for i in range(2000) if draw_value(date, "c1", i) < 0.02}
    audit = sample_audit(scores, preds, date, BUDGETS, keep_rate=0.02).toPandas()  # budget 50 / 2000 > 0.02
    rejected = audit.query("stratum == 'prefilter_rejected'")
    assert set(rejected["frame_index"]) == kept and 20 <= len(kept) <= 65
    assert (rejected["sampling_probability"] == 0.02).all()
    assert len(audit.query("stratum != 'prefilter_rejected'")) == 40  # the passed strata: as without a keep rate
    roomy = sample_audit(scores, preds, date, BUDGETS, keep_rate=0.2).toPandas()
    roomy = roomy.query("stratum == 'prefilter_rejected'")
    assert (roomy["sampling_probability"] == 0.025).all() and set(roomy["frame_index"]) <= \
        {i for i in range(2000) if draw_value(date, "c1", i) < 0.2}


def test_budgets_must_name_the_strata(spark):
    scores, preds = _scores_and_predictions(spark, 5, 2)
    with pytest.raises(ValueError, match="strata"):
        sample_audit(scores, preds, "2026-11-02", {"prefilter_rejected": 1})


def _cells(true_recall: float, rejected: int, passed: int, audited_rejected: int, seed: int) -> pd.DataFrame:
    """One day whose positives are `true_recall` of them in the passed frames."""
    rng = np.random.default_rng(seed)
    positives = 300
    missed = int(round(positives * (1 - true_recall)))
    rejected_pos = np.zeros(rejected, bool)
    rejected_pos[:missed] = True
    audit = rng.choice(rejected, audited_rejected, replace=False)
    sample = pd.DataFrame({"day": "2026-11-02", "call_id": "c", "frame_index": audit,
                           "stratum": "prefilter_rejected", "stratum_frames": rejected})
    passed_frames = pd.DataFrame({"day": "2026-11-02", "call_id": "c", "frame_index": rejected + np.arange(passed),
                                  "stratum": "prefilter_passed", "stratum_frames": passed})
    sample = pd.concat([sample, passed_frames], ignore_index=True)
    is_pos = np.r_[rejected_pos[audit], np.arange(passed) < positives - missed]
    labels = sample.assign(brand=np.where(is_pos, "Brewhaus", "none"), verdict="confirmed",
                           known_at=pd.Timestamp("2026-11-03"))
    return audit_cells(sample, labels)


def test_the_interval_covers_the_true_recall_in_most_draws():
    covered = 0
    for seed in range(40):
        est = recall_estimate(_cells(0.95, rejected=20000, passed=600, audited_rejected=1500, seed=seed), seed=seed)
        covered += est["low"] <= 0.95 <= est["high"]
        assert est["low"] <= est["estimate"] <= est["high"]
    assert covered >= 34  # a 95% interval: 38 of 40 expected


def test_a_day_counts_only_when_every_stratum_has_labels_and_no_labels_give_no_estimate():
    sample = pd.DataFrame({"day": ["2026-11-02"] * 2, "call_id": ["c", "c"], "frame_index": [1, 2],
                           "stratum": ["prefilter_rejected", "prefilter_passed"], "stratum_frames": [100, 10]})
    labels = pd.DataFrame({"day": ["2026-11-02"], "call_id": ["c"], "frame_index": [2], "brand": ["Brewhaus"],
                           "verdict": ["confirmed"], "known_at": [pd.Timestamp("2026-11-03")]})
    assert audit_cells(sample, labels).empty
    assert recall_estimate(audit_cells(sample, labels.iloc[0:0]))["estimate"] is None
    both = pd.concat([labels, labels.assign(frame_index=1, brand="none")])
    est = recall_estimate(audit_cells(sample, both))
    assert est["estimate"] == pytest.approx(1.0) and est["labelled_frames"] == 2 and est["days"] == 1
    assert est["low"] < 0.9  # one rejected frame looked at: little is known
