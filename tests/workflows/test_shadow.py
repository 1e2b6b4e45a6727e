"""The shadow comparison (champion vs challenger on one date), without Spark."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from percolate.core.tables import BATCH_TABLES, SHADOW_TABLES, WAREHOUSE
from workflows.shadow import compare_shadow, format_shadow, frame_counts_sql, shadow_run_id

DATE = "2026-05-02"


def daily(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "brand", "frames", "confirmed"])


def test_pairs_confirmed_by_one_side_only_are_the_disagreements():
    champion = daily([("u1", "Lavazza", 3, True), ("u1", "Illy", 1, False), ("u2", "Lavazza", 5, True),
                      ("u3", "Kimbo", 2, True)])
    challenger = daily([("u1", "Lavazza", 4, True), ("u1", "Illy", 2, True), ("u2", "Lavazza", 1, False),
                        ("u4", "Segafredo", 1, False)])  # u3 Kimbo: not seen at all by the challenger
    frames = {"champion_frames_passed": 40, "challenger_frames_passed": 35, "both_frames_passed": 30,
              "champion_detections": 11, "challenger_detections": 8, "both_detections": 7}
    out = compare_shadow(champion, challenger, frames)
    assert out["disagreements"] == [
        {"user_id": "u1", "brand": "Illy", "champion_confirmed": False, "challenger_confirmed": True,
         "champion_frames": 1, "challenger_frames": 2},
        {"user_id": "u2", "brand": "Lavazza", "champion_confirmed": True, "challenger_confirmed": False,
         "champion_frames": 5, "challenger_frames": 1},
        {"user_id": "u3", "brand": "Kimbo", "champion_confirmed": True, "challenger_confirmed": False,
         "champion_frames": 2, "challenger_frames": 0},
    ]
    assert out["agree"] == 2  # u1 Lavazza (both confirm), u4 Segafredo (neither does)
    assert out["champion"] == {"user_brand_rows": 4, "confirmed": 3, "frames_passed": 40, "detections": 11}
    assert out["challenger"] == {"user_brand_rows": 4, "confirmed": 2, "frames_passed": 35, "detections": 8}
    assert out["both"] == {"confirmed": 1, "frames_passed": 30, "detections": 7}
    text = format_shadow(dict(out, date=DATE, batch="v0001+v0003"))
    assert "1 of 1" not in text and "2 user-brands agree, 3 disagree:" in text and "challenger only" in text


def test_the_same_rows_on_both_sides_agree_everywhere_and_empty_sides_are_fine():
    rows = daily([("u1", "Lavazza", 3, True), ("u2", "Illy", 1, False)])
    out = compare_shadow(rows, rows.copy())
    assert (out["disagreements"], out["agree"]) == ([], 2)
    assert out["champion"] == out["challenger"] == {"user_brand_rows": 2, "confirmed": 1}
    empty = compare_shadow(daily([]), daily([]))
    assert (empty["disagreements"], empty["agree"], empty["both"]) == ([], 0, {"confirmed": 0})
    assert compare_shadow(daily([]), rows)["disagreements"] == [
        {"user_id": "u1", "brand": "Lavazza", "champion_confirmed": False, "challenger_confirmed": True,
         "champion_frames": 0, "challenger_frames": 3}]
    with pytest.raises(ValueError, match="lack columns"):
        compare_shadow(rows.drop(columns=["frames"]), rows)


def test_frame_counts_come_from_both_sides_frames_of_the_date_and_batch():
    con = duckdb.connect()
    cols = "call_id VARCHAR, frame_index INTEGER, label VARCHAR, is_detection BOOLEAN, dt VARCHAR"
    con.execute(f"CREATE TABLE frame_predictions ({cols})")
    con.execute(f"CREATE TABLE shadow_frame_predictions ({cols}, batch VARCHAR)")
    con.execute("INSERT INTO frame_predictions VALUES ('c1', 0, 'A', true, ?), ('c1', 1, 'B', true, ?), "
                "('c1', 2, 'A', false, ?), ('c9', 0, 'A', true, '2026-05-01')", [DATE] * 3)
    con.execute("INSERT INTO shadow_frame_predictions VALUES ('c1', 0, 'A', true, ?, 'p+h'), "
                "('c1', 1, 'A', true, ?, 'p+h'), ('c2', 5, 'A', false, ?, 'p+h'), "
                "('c1', 2, 'A', true, ?, 'other')", [DATE] * 4)
    cursor = con.execute(frame_counts_sql(DATE, "p+h"))
    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    assert row == {"champion_frames_passed": 3, "challenger_frames_passed": 3, "both_frames_passed": 2,
                   "champion_detections": 2, "challenger_detections": 2, "both_detections": 1}


def test_shadow_tables_have_the_published_columns_and_are_batch_tables():
    for name in SHADOW_TABLES:
        assert WAREHOUSE[name] == WAREHOUSE[name.removeprefix("shadow_")]
        assert name in BATCH_TABLES
    assert shadow_run_id(DATE, "v0001+v0002") == "shadow-2026-05-02-v0001+v0002"


def test_the_batch_names_the_pair():
    from jobs.shadow_score import shadow_batch

    assert shadow_batch("v0001", "v0003") == "v0001+v0003"
    with pytest.raises(ValueError, match="bad batch name"):
        shadow_batch("v0001", "../x")
