"""Validation against a file-based GX context: pass, critical failures, warnings, docs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import expectation_frames as F
from expectations import (
    ValidationFailed,
    clear_context_cache,
    validate,
)


@pytest.mark.parametrize("name", sorted(F.GOOD))
def test_good_frame_passes(gx_root, name):
    make, params = F.GOOD[name]
    report = validate(make(), name, gx_root=gx_root, run_name="good", **params)
    assert report.success, report.critical_failures
    assert report.critical_failures == []
    assert report.warnings == []
    assert report.evaluated > 0 and report.rows > 0
    json.dumps(report.to_dict())


def validate_or_raise(df, suite, **kwargs):
    report = validate(df, suite, **kwargs)
    if not report.success:
        raise ValidationFailed(report)
    return report


def test_scores_outside_unit_interval_are_critical(gx_root):
    df = F.prefilter_scores(120)
    df.loc[[3, 5, 9], "prefilter_score"] = [1.7, -0.2, 2.0]
    with pytest.raises(ValidationFailed) as err:
        validate_or_raise(df, "prefilter_scores", gx_root=gx_root, run_name="bad", **F.cols("prefilter_scores"))
    msg = str(err.value)
    assert "expect_column_values_to_be_between(prefilter_score, 0..1) failed: 3 of 120 rows" in msg
    for v in ("1.7", "-0.2", "2.0"):
        assert v in msg
    assert err.value.report.success is False


@pytest.mark.parametrize("column", ["score", "none_score"])
def test_heavy_scores_outside_unit_interval_are_critical(gx_root, column):
    df = F.heavy_predictions(50)
    df.loc[7, column] = 1.25
    report = validate(df, "heavy_predictions", gx_root=gx_root, run_name="bad",
                      **F.cols("heavy_predictions"), class_names=F.BRANDS)
    assert not report.success
    assert any(column in m and "1.25" in m for m in report.critical_failures), report.critical_failures


def test_reuse_of_a_later_frame_is_critical(gx_root):
    df = F.heavy_predictions(60)
    df.loc[[5, 8], "reused_from"] = df.loc[[5, 8], "frame_index"] + 1
    report = validate(df, "heavy_predictions", gx_root=gx_root, run_name="bad",
                      **F.cols("heavy_predictions"), class_names=F.BRANDS)
    assert not report.success
    assert report.critical_failures == ["expect_column_pair_values_a_to_be_greater_than_b(frame_index, reused_from) "
                                        "failed: 2 of 60 rows, e.g. [(5, 6), (8, 9)]"]


def test_null_user_in_frame_predictions_is_critical(gx_root):
    df = F.frame_predictions(100)
    df.loc[[1, 2], "user_id"] = None
    with pytest.raises(ValidationFailed) as err:
        validate_or_raise(df, "frame_predictions", gx_root=gx_root, run_name="bad",
                          **F.cols("frame_predictions"), class_names=F.BRANDS)
    (msg,) = err.value.report.critical_failures
    assert msg.startswith("expect_column_values_to_not_be_null(user_id) failed: 2 of 100 rows")
    assert "[1, 2]" in msg  # the offending row index


def test_null_provenance_is_critical(gx_root):
    df = F.frame_predictions(20)
    df.loc[0, "heavy_version"] = None
    report = validate(df, "frame_predictions", gx_root=gx_root, run_name="bad",
                      **F.cols("frame_predictions"), class_names=F.BRANDS)
    assert not report.success
    assert any("heavy_version" in m for m in report.critical_failures)


@pytest.mark.parametrize("name", ["sampled_frames", "prefilter_scores", "heavy_predictions", "training_data"])
def test_duplicated_frame_key_is_critical(gx_root, name):
    make, params = F.GOOD[name]
    df = make()
    df.loc[10, ["call_id", "frame_index"]] = df.loc[11, ["call_id", "frame_index"]].to_numpy()
    report = validate(df, name, gx_root=gx_root, run_name="dup", **params)
    assert not report.success
    (msg,) = [m for m in report.critical_failures if "compound" in m]
    assert "(call_id, frame_index)" in msg and "2 of" in msg
    assert f"('{df.loc[11, 'call_id']}', {df.loc[11, 'frame_index']})" in msg


def test_unknown_brand_label_is_critical_and_class_list_is_runtime(gx_root):
    df = F.heavy_predictions(60)
    df.loc[4, "label"] = "brand_x"
    report = validate(df, "heavy_predictions", gx_root=gx_root, run_name="bad",
                      **F.cols("heavy_predictions"), class_names=F.BRANDS)
    assert not report.success
    (msg,) = report.critical_failures
    assert "expect_column_values_to_be_in_set(label" in msg and "'brand_x'" in msg
    # same suite name, another class list: the stored suite is updated, not duplicated
    report = validate(df, "heavy_predictions", gx_root=gx_root, run_name="ok", **F.cols("heavy_predictions"),
                      class_names=[*F.BRANDS, "brand_x"])
    assert report.success, report.critical_failures


def test_unknown_brand_in_user_brand_daily_is_critical(gx_root):
    df = F.user_brand_daily()
    df.loc[0, "brand"] = "nescafe_fake"
    df.loc[1, "max_score"] = 1.5
    df.loc[2, "frames"] = 0
    report = validate(df, "user_brand_daily", gx_root=gx_root, run_name="bad",
                      **F.cols("user_brand_daily"), class_names=F.BRANDS)
    text = " | ".join(report.critical_failures)
    assert "nescafe_fake" in text and "1.5" in text and "frames" in text


def test_unknown_quarantine_reason_is_critical(gx_root):
    df = F.video_outcomes()
    df.loc[0, "reason"] = "aliens"
    report = validate(df, "video_outcomes", gx_root=gx_root, run_name="bad",
                      **F.cols("video_outcomes"), reason_codes=F.REASONS)
    (msg,) = report.critical_failures
    assert "reason" in msg and "'aliens'" in msg and "status == 'quarantined'" in msg


def test_missing_column_is_critical(gx_root):
    df = F.sampled_frames().drop(columns=["width"])
    report = validate(df, "sampled_frames", gx_root=gx_root, run_name="bad", **F.cols("sampled_frames"))
    assert not report.success
    assert any("expect_column_to_exist(width)" in m for m in report.critical_failures)


def test_warnings_do_not_fail(gx_root):
    df = F.manifest()
    df.loc[0, "size_bytes"] = 0
    df.loc[1, "user_id"] = None
    report = validate_or_raise(df, "manifest", gx_root=gx_root, run_name="warn", **F.cols("manifest"))
    assert report.success and report.critical_failures == []
    assert len(report.warnings) == 2
    assert any("size_bytes" in w and "[0]" in w for w in report.warnings)
    assert any("user_id" in w for w in report.warnings)


def test_label_share_outside_bounds_warns(gx_root):
    df = F.training_data()
    df["label"] = None
    report = validate(df, "training_data", gx_root=gx_root, run_name="warn", class_names=F.BRANDS)
    assert report.success
    (msg,) = report.warnings
    assert "label" in msg and "0.01..0.9" in msg


def test_validate_twice_and_docs(tmp_path):
    root = tmp_path / "gx"
    df = F.prefilter_scores()
    first = validate(df, "prefilter_scores", gx_root=root, run_name="r1", **F.cols("prefilter_scores"))
    second = validate(df, "prefilter_scores", gx_root=root, run_name="r2", **F.cols("prefilter_scores"))
    clear_context_cache()  # as a fresh process would see the stored project
    third = validate(df, "prefilter_scores", gx_root=root, run_name="r3", **F.cols("prefilter_scores"))
    assert first.success and second.success and third.success
    assert third.docs_path and third.docs_path.endswith("index.html")
    index = Path(third.docs_path)
    assert index.is_file() and index.is_relative_to(root)
    assert third.result_docs_path and Path(third.result_docs_path).is_file()
    assert "r3" in third.result_docs_path
    # every run kept its own validation result
    assert len(list((root / "gx" / "uncommitted" / "validations" / "prefilter_scores").iterdir())) == 3


def test_interleaved_roots(tmp_path):
    df = F.manifest()
    a = validate(df, "manifest", gx_root=tmp_path / "a", run_name="x", **F.cols("manifest"))
    b = validate(df, "manifest", gx_root=tmp_path / "b", run_name="x", **F.cols("manifest"))
    a2 = validate(df, "manifest", gx_root=tmp_path / "a", run_name="y", **F.cols("manifest"))
    assert a.success and b.success and a2.success
    assert a2.docs_path.startswith(str((tmp_path / "a").resolve()))
    assert b.docs_path.startswith(str((tmp_path / "b").resolve()))


def test_ten_thousand_rows_is_fast(gx_root):
    df = F.frame_predictions(10_000)
    validate(df, "frame_predictions", gx_root=gx_root, run_name="warm",
             **F.cols("frame_predictions"), class_names=F.BRANDS)
    t0 = time.perf_counter()
    report = validate(df, "frame_predictions", gx_root=gx_root, run_name="timed",
                      **F.cols("frame_predictions"), class_names=F.BRANDS)
    elapsed = time.perf_counter() - t0
    assert report.success
    assert elapsed < 6.0, f"{elapsed:.2f}s for 10k rows (target ~3 s)"


def test_an_audit_frame_without_a_probability_or_drawn_twice_is_critical(gx_root):
    df = F.audit_frames(30)
    df.loc[4, "sampling_probability"] = 0.0
    df.loc[9, ["call_id", "frame_index"]] = df.loc[8, ["call_id", "frame_index"]].tolist()
    report = validate(df, "audit_frames", gx_root=gx_root, run_name="bad", **F.GOOD["audit_frames"][1])
    assert not report.success
    failed = " ".join(report.critical_failures)
    assert "sampling_probability" in failed and "call_id" in failed, report.critical_failures


def test_every_manifest_row_has_exactly_one_outcome(gx_root):
    """The accounting: an outcome missing, duplicated or for a call the manifest does not
    name fails the hand-over."""
    df = F.video_outcomes(5)
    ids = df["call_id"].tolist()
    ok = validate(df, "video_outcomes", gx_root=gx_root, run_name="ok", **F.cols("video_outcomes"),
                  reason_codes=F.REASONS, manifest_call_ids=ids)
    assert ok.success, ok.critical_failures
    missing = validate(df.iloc[1:], "video_outcomes", gx_root=gx_root, run_name="missing",
                       **F.cols("video_outcomes"), reason_codes=F.REASONS, manifest_call_ids=ids)
    assert not missing.success and any("row_count" in m for m in missing.critical_failures)
    stranger = df.copy()
    stranger.loc[0, "call_id"] = "not-in-the-manifest"
    report = validate(stranger, "video_outcomes", gx_root=gx_root, run_name="stranger",
                      **F.cols("video_outcomes"), reason_codes=F.REASONS, manifest_call_ids=ids)
    assert any("not-in-the-manifest" in m for m in report.critical_failures), report.critical_failures
    doubled = df.copy()
    doubled.loc[1, "call_id"] = doubled.loc[0, "call_id"]
    report = validate(doubled, "video_outcomes", gx_root=gx_root, run_name="doubled",
                      **F.cols("video_outcomes"), reason_codes=F.REASONS, manifest_call_ids=ids + ["extra"])
    assert not report.success
