"""Publish transforms and the warehouse's publish-and-commit, on the shared local session."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import Row, functions as F
from pyspark.testing import assertDataFrameEqual

from percolate.core.tables import WAREHOUSE, names, spark_schema
from percolate.io.warehouse import HiveWarehouse, new_publish_id
from percolate.transforms.publishing import (build_calls, build_frame_predictions, build_quarantine, build_run_row,
                                             build_user_brand_daily)

pytestmark = pytest.mark.spark

NOW = dt.datetime(2026, 11, 21, 3, 0, 0)
PROVENANCE = {"run_id": "r1", "prefilter_version": "v0001", "heavy_version": "v0002",
              "prefilter_threshold": 0.2, "heavy_threshold": 0.6,
              "aggregation": '{"min_frames": 2, "min_score": 0.8}', "sampler": '{"fps": 1.0}',
              "heavy_reuse_tolerance": 4.0, "code_version": "abc123", "published_at": NOW}


def predictions(spark, rows):
    cols = ["call_id", "user_id", "frame_index", "ts_ms", "prefilter_score", "decode_mode", "label",
            "score", "none_score", "is_detection"]
    df = spark.createDataFrame([dict(zip(cols, r)) for r in rows],
                               "call_id string, user_id string, frame_index int, ts_ms long, "
                               "prefilter_score double, decode_mode string, label string, score double, "
                               "none_score double, is_detection boolean")
    return (df.withColumn("loc_x", F.lit(0.5)).withColumn("loc_y", F.lit(0.5))
            .withColumn("reused_from", F.lit(None).cast("int")))


def test_user_brand_daily_applies_the_user_day_rule(spark):
    preds = predictions(spark, [
        ("c1", "u1", 3, 3000, 0.9, "keyframes", "Brewhaus", 0.95, 0.01, True),
        ("c1", "u1", 4, 4000, 0.9, "keyframes", "Brewhaus", 0.85, 0.02, True),
        ("c2", "u1", 1, 1000, 0.9, "keyframes", "Brewhaus", 0.82, 0.10, True),
        ("c2", "u1", 2, 2000, 0.9, "keyframes", "Brewhaus", 0.70, 0.20, True),   # below min_score
        ("c2", "u1", 5, 5000, 0.9, "keyframes", "Moonbean", 0.90, 0.05, True),   # one frame only
        ("c3", "u2", 0, 0, 0.5, "keyframes", "Moonbean", 0.40, 0.55, False),     # below min_score
        ("c4", None, 0, 0, 0.5, "keyframes", "Moonbean", 0.99, 0.00, True),      # no user: not attributed
    ])
    daily = build_user_brand_daily(build_frame_predictions(preds, PROVENANCE), min_frames=2, min_score=0.8)
    got = daily.select("user_id", "brand", "frames", "calls", "max_score", "first_seen_call_id",
                       "first_seen_ts_ms", "last_seen_call_id", "last_seen_ts_ms", "confirmed", "run_id")
    expected = spark.createDataFrame([
        Row(user_id="u1", brand="Brewhaus", frames=3, calls=2, max_score=0.95, first_seen_call_id="c1",
            first_seen_ts_ms=3000, last_seen_call_id="c2", last_seen_ts_ms=1000, confirmed=True, run_id="r1"),
        Row(user_id="u1", brand="Moonbean", frames=1, calls=1, max_score=0.90, first_seen_call_id="c2",
            first_seen_ts_ms=5000, last_seen_call_id="c2", last_seen_ts_ms=5000, confirmed=False, run_id="r1"),
    ], got.schema)
    assertDataFrameEqual(got, expected)


def test_frame_predictions_carry_provenance(spark):
    preds = predictions(spark, [("c1", "u1", 3, 3000, 0.9, "keyframes", "Brewhaus", 0.95, 0.01, True)])
    row = build_frame_predictions(preds, PROVENANCE).first().asDict()
    for key, value in PROVENANCE.items():
        assert row[key] == value
    assert set(names(WAREHOUSE["frame_predictions"])) <= set(row)


def test_quarantine_keeps_only_rejected_videos(spark):
    outcomes = spark.createDataFrame([
        ("c1", "u1", "videos/dt=2026-01-01/c1.mp4", "ok", None, None),
        ("c2", "u2", "videos/dt=2026-01-01/c2.mp4", "quarantined", "empty_file", "0 bytes"),
    ], "call_id string, user_id string, video_key string, status string, reason string, message string")
    rows = build_quarantine(outcomes, "r1", NOW).collect()
    assert [(r.call_id, r.reason, r.run_id) for r in rows] == [("c2", "empty_file", "r1")]


def test_run_row_sums_cpu_and_prices_it():
    metrics = {
        "sample_frames": {"cpu_s": 30.0, "videos": 10, "videos_ok": 9, "video_seconds": 3600.0,
                          "sampled_frames": 3600, "decode_modes": ["keyframes"]},
        "prefilter": {"cpu_s": 6.0, "frames_passed": 300},
        "heavy": {"cpu_s": 12.0, "positives": 40, "model_runs": 250, "reused": 50, "reuse_tolerance": 4.0},
        "publish": {"cpu_s": 12.0},
    }
    row = build_run_row(metrics=metrics, counts={"user_brand_rows": 5, "user_brand_detections": 3},
                        provenance=PROVENANCE, cost_per_core_hour=0.06, started_at=NOW,
                        warnings=["1 videos quarantined"], publish_id="p1",
                        plan={"estimated_cost_usd": 0.002, "budget_usd": 0.01, "on_over_budget": "degrade",
                              "fps": 0.5, "expected_recall": 0.93})
    assert (row["cost_estimate_usd"], row["budget_usd"], row["on_over_budget"], row["expected_recall"]) == \
        (0.002, 0.01, "degrade", 0.93)
    assert row["sample_fps"] == json.loads(PROVENANCE["sampler"])["fps"]  # the rate the sampler recorded
    assert row["cpu_s_total"] == 60.0
    assert row["estimated_cost_usd"] == pytest.approx(60 / 3600 * 0.06)
    assert row["cost_per_video_hour_usd"] == pytest.approx(60 / 3600 * 0.06)
    assert row["videos_quarantined"] == 1
    assert row["heavy_model_runs"] == 250 and row["heavy_reuse_tolerance"] == 4.0
    assert set(row) == set(names(WAREHOUSE["pipeline_runs"]))
    assert row["finished_at"] == NOW and row["code_version"] == "abc123"


def quarantine_rows(spark, ids, run_id="r"):
    return spark.createDataFrame(
        [(i, "u", f"k/{i}", "empty_file", "m", run_id, NOW) for i in ids],
        "call_id string, user_id string, video_key string, reason string, message string, run_id string, "
        "published_at timestamp")


def publish(spark, warehouse, date, quarantined, run_id="r", publish_id=None):
    """Write a date's quarantine and run row under a new publish id, then commit it."""
    publish_id = publish_id or new_publish_id()
    warehouse.write("quarantine", quarantine_rows(spark, quarantined, run_id), date, publish_id)
    for table in ("frame_predictions", "user_brand_daily", "calls"):
        schema = spark_schema(WAREHOUSE[table])
        warehouse.write(table, spark.createDataFrame([], schema), date, publish_id)
    row = {c: None for c in names(WAREHOUSE["pipeline_runs"])} | {"run_id": run_id, "publish_id": publish_id}
    warehouse.write("pipeline_runs", spark.createDataFrame([row], spark_schema(WAREHOUSE["pipeline_runs"])),
                    date, publish_id)
    warehouse.commit(date, publish_id)
    return publish_id


def test_a_publish_replaces_only_its_date_and_shows_nothing_before_its_commit(spark):
    warehouse = HiveWarehouse(spark, "percolate_test", spark.conf.get("spark.sql.warehouse.dir"))
    warehouse.ensure_tables()
    q = lambda d: sorted(r.call_id for r in spark.sql(  # noqa: E731
        f"SELECT call_id FROM percolate_test.quarantine WHERE dt = '{d}'").collect())
    first = publish(spark, warehouse, "2026-01-01", ["a", "b"])
    publish(spark, warehouse, "2026-01-02", ["c"])
    assert (q("2026-01-01"), q("2026-01-02")) == (["a", "b"], ["c"])
    # written but not committed: readers still see the old publish
    pending = new_publish_id()
    warehouse.write("quarantine", quarantine_rows(spark, ["x"]), "2026-01-01", pending)
    assert q("2026-01-01") == ["a", "b"] and warehouse.committed("2026-01-01") == first
    # a rerun: its rows replace the date's, no duplicates, the other date untouched
    second = publish(spark, warehouse, "2026-01-01", ["a", "b", "d"], run_id="r2")
    assert (q("2026-01-01"), q("2026-01-02")) == (["a", "b", "d"], ["c"])
    assert {r.run_id for r in spark.sql("SELECT run_id FROM percolate_test.quarantine WHERE dt='2026-01-01'")
            .collect()} == {"r2"}
    publish(spark, warehouse, "2026-01-01", [])  # empty data empties the date
    assert (q("2026-01-01"), q("2026-01-02")) == ([], ["c"])

    # retention: older publishes stay until they expire, the committed one always stays
    assert warehouse.remove_expired("2026-01-01", dt.timedelta(hours=1)) == []
    assert {first, second, pending} <= warehouse.publishes("2026-01-01")
    removed = warehouse.remove_expired("2026-01-01", dt.timedelta(0))
    assert set(removed) == {first, second, pending}
    assert warehouse.publishes("2026-01-01") == {warehouse.committed("2026-01-01")}
    assert q("2026-01-01") == [] and q("2026-01-02") == ["c"]
    partitions = spark.sql("SHOW PARTITIONS percolate_test_publishes.quarantine").collect()
    assert len(partitions) == 2  # one per date: the committed publishes


def test_tables_and_columns_carry_comments(spark):
    warehouse = HiveWarehouse(spark, "percolate_test", spark.conf.get("spark.sql.warehouse.dir"))
    warehouse.ensure_tables()
    for table in WAREHOUSE:
        described = {r.col_name: r.comment for r in spark.sql(f"DESCRIBE percolate_test.{table}").collect()}
        assert all(described.get(c) for c in names(WAREHOUSE[table])), table
    assert spark.catalog.getTable("percolate_test.calls").description


def test_a_table_from_another_version_is_refused_with_a_clear_error(spark):
    db = "percolate_old_test"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {db}")
    spark.sql(f"CREATE TABLE {db}.quarantine (call_id string, user_id string, video_key string, reason string, "
              f"message string, dt string) USING parquet PARTITIONED BY (dt)")
    with pytest.raises(RuntimeError, match="made by another version"):
        HiveWarehouse(spark, db, spark.conf.get("spark.sql.warehouse.dir")).ensure_tables()


def test_pipeline_runs_of_an_earlier_version_gets_the_columns_added_since(spark):
    from percolate.core.tables import ddl

    db = "percolate_upgrade_test"
    cols = WAREHOUSE["pipeline_runs"]
    budget = ("cost_estimate_usd", "budget_usd", "on_over_budget", "sample_fps", "expected_recall")
    old = tuple(c for c in cols if not c.name.startswith(("audit_", "prefilter_recall_")) and c.name not in budget)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {db}")
    spark.sql(f"CREATE TABLE {db}.pipeline_runs ({ddl(old)}, dt string) USING parquet PARTITIONED BY (dt)")
    spark.sql(f"INSERT INTO {db}.pipeline_runs PARTITION (dt='2026-11-01') (run_id, status) VALUES ('r0', 'success')")
    HiveWarehouse(spark, db, spark.conf.get("spark.sql.warehouse.dir")).ensure_tables()
    table = spark.table(f"{db}.pipeline_runs")
    assert table.columns == [*names(cols), "dt"]
    row = table.where("dt = '2026-11-01'").first()
    assert row.run_id == "r0" and row.prefilter_recall_estimate is None and row.audit_drawn is None
    assert row.budget_usd is None and row.expected_recall is None


def test_calls_has_one_row_per_video_with_its_costs(spark):
    outcomes = spark.createDataFrame(
        [("c1", "u1", "k/c1", "ok", None, 10.0, 640, 360, "h264", "all", 10, 1.5),
         ("c2", "u2", "k/c2", "corrupt", "m", None, None, None, None, None, 3, 0.2)],
        "call_id string, user_id string, video_key string, status string, reason string, duration_s double, "
        "width int, height int, codec string, decode_mode string, frames int, cpu_s double")
    frames = spark.createDataFrame(
        [("c1", 0, None, True), ("c1", 1, 0, False), ("c1", 2, None, False)],
        "call_id string, frame_index int, reused_from int, is_detection boolean")
    rows = {r.call_id: r for r in build_calls(outcomes, frames, "r1", NOW).collect()}
    assert (rows["c1"].sampled_frames, rows["c1"].prefilter_passed, rows["c1"].heavy_model_runs,
            rows["c1"].detection_frames, rows["c1"].cpu_s_decode) == (10, 3, 2, 1, 1.5)
    assert (rows["c2"].status, rows["c2"].sampled_frames, rows["c2"].prefilter_passed) == ("corrupt", 0, 0)
    assert set(rows["c1"].asDict()) == set(names(WAREHOUSE["calls"]))


def test_a_batch_is_replaced_whole_and_other_batches_stay(spark):
    warehouse = HiveWarehouse(spark, "percolate_test", spark.conf.get("spark.sql.warehouse.dir"))
    warehouse.ensure_tables()
    cols = "label_id string, subject string, call_id string, frame_index int, user_id string, day string, " \
           "brand string, verdict string, source string, known_at timestamp"
    when = dt.datetime(2026, 12, 2, 9)

    def labels(*ids):
        return spark.createDataFrame([(i, f"user_day:u:{i}", None, None, "u", "2026-12-01", "b", "confirmed",
                                       "import", when) for i in ids], cols)

    def rows():
        return sorted((r.batch, r.label_id) for r in spark.sql(
            "SELECT batch, label_id FROM percolate_test.labels WHERE dt = '2026-12-02'").collect())

    warehouse.put_batch("labels", labels("a", "b"), "2026-12-02", "import-1")
    warehouse.put_batch("labels", labels("c"), "2026-12-02", "import-2")
    warehouse.put_batch("labels", labels("d"), "2026-12-02", "import-1", retention=dt.timedelta(0))  # re-import
    assert rows() == [("import-1", "d"), ("import-2", "c")]
    folder = Path(warehouse.root.removeprefix("file:")) / "batches/percolate_test/labels/dt=2026-12-02/batch=import-1"
    assert len(list(folder.glob("write=*"))) == 1  # the replaced write is gone (retention 0)
    with pytest.raises(ValueError, match="bad batch name"):
        warehouse.put_batch("labels", labels("e"), "2026-12-02", "../x")
