"""Suites as code: registry, severities, runtime parameters."""

from __future__ import annotations

import subprocess
import sys

import pytest

from expectations import SUITES, build_suite
from expectations.suites import CRITICAL, WARNING

from expectation_frames import BRANDS, GOOD

HANDOVERS = [
    "manifest",
    "sampled_frames",
    "video_outcomes",
    "prefilter_scores",
    "heavy_predictions",
    "frame_predictions",
    "user_brand_daily",
    "training_data",
    "labels",
    "audit_frames",
]


def test_registry_covers_every_handover():
    assert sorted(SUITES) == sorted(HANDOVERS)
    assert set(GOOD) == set(SUITES)


@pytest.mark.parametrize("name", HANDOVERS)
def test_every_expectation_has_a_severity(name):
    suite = build_suite(name, **GOOD[name][1])
    assert suite.name == name
    assert suite.expectations
    for exp in suite.expectations:
        assert exp.meta["severity"] in (CRITICAL, WARNING), exp


@pytest.mark.parametrize("name", ["heavy_predictions", "frame_predictions", "user_brand_daily", "training_data",
                                  "labels"])
def test_class_list_is_a_runtime_parameter(name):
    extra = {k: v for k, v in GOOD[name][1].items() if k != "class_names"}
    with pytest.raises(ValueError, match="class_names"):
        build_suite(name, **extra)
    suite = build_suite(name, class_names=["acme", "zeta"], **extra)
    value_sets = [e.value_set for e in suite.expectations if hasattr(e, "value_set") and e.column in ("label",
                                                                                                        "brand")]
    assert [sorted(v) for v in value_sets] == [["acme", "zeta"]]
    assert not any(b in str(suite.to_json_dict()) for b in BRANDS)


def test_reason_codes_are_a_parameter():
    suite = build_suite("video_outcomes", reason_codes=["r1", "r2"], columns=["call_id"])
    assert ["r1", "r2"] in [getattr(e, "value_set", None) for e in suite.expectations]
    with pytest.raises(TypeError, match="reason_codes"):
        build_suite("video_outcomes", columns=["call_id"])  # no default set: the caller gives its codes


def test_columns_come_from_the_caller():
    suite = build_suite("manifest", columns=["call_id", "extra"])
    assert [e.column for e in suite.expectations if e.expectation_type == "expect_column_to_exist"] == [
        "call_id", "extra"]


def test_critical_and_warning_split_where_specified():
    def sev(suite, type_, column):
        return [
            e.meta["severity"]
            for e in suite.expectations
            if e.expectation_type == type_ and getattr(e, "column", None) == column
        ]

    manifest = build_suite("manifest", **GOOD["manifest"][1])
    assert sev(manifest, "expect_column_values_to_not_be_null", "user_id") == [WARNING]
    assert sev(manifest, "expect_column_values_to_not_be_null", "call_id") == [CRITICAL]
    assert sorted(sev(manifest, "expect_column_values_to_be_between", "size_bytes")) == [CRITICAL, WARNING]
    published = build_suite("frame_predictions", **GOOD["frame_predictions"][1])
    assert sev(published, "expect_column_values_to_not_be_null", "user_id") == [CRITICAL]
    training = build_suite("training_data", class_names=BRANDS)
    assert sev(training, "expect_column_proportion_of_non_null_values_to_be_between", "label") == [WARNING]


def test_unknown_suite_name():
    with pytest.raises(KeyError, match="unknown suite"):
        build_suite("nope")


def test_import_is_cheap():
    code = (
        "import sys, expectations, expectations.suites, expectations.drift, expectations.validate;"
        "assert 'great_expectations' not in sys.modules, 'GX imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
