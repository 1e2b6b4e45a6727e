"""DuckDB's views over the committed publishes only (the catalog's partitions given directly)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from percolate.core.tables import BATCH_TABLES, WAREHOUSE, names
from percolate.io.published import Partition, register_views

TYPES = {"string": pa.string(), "int": pa.int32(), "bigint": pa.int64(), "double": pa.float64(),
         "boolean": pa.bool_(), "binary": pa.binary(), "timestamp": pa.timestamp("us")}


def write(folder, table, rows):
    folder.mkdir(parents=True)
    schema = pa.schema([(c.name, TYPES[c.type]) for c in WAREHOUSE[table]])
    full = [{n: r.get(n) for n in names(WAREHOUSE[table])} for r in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=schema), folder / "part-0.parquet")


def publish(root, date, publish_id, quarantined, commit=True):
    parts = []
    for table in ("frame_predictions", "user_brand_daily", "quarantine", "calls"):
        folder = root / table / f"dt={date}" / f"publish_id={publish_id}"
        rows = [{"call_id": c, "run_id": publish_id, "published_at": dt.datetime(2026, 5, 2)}
                for c in quarantined] if table == "quarantine" else []
        write(folder, table, rows)
        parts.append(Partition("pc_publishes", table, {"dt": date, "publish_id": publish_id}, str(folder)))
    marker = root / "pipeline_runs" / f"dt={date}" / f"publish_id={publish_id}"
    write(marker, "pipeline_runs", [{"run_id": publish_id, "publish_id": publish_id, "videos": 3}])
    if commit:
        parts.append(Partition("pc", "pipeline_runs", {"dt": date}, str(marker)))
    return parts


def test_views_show_each_dates_committed_publish_only(tmp_path):
    old = publish(tmp_path, "2026-05-01", "p1", ["a", "b"])
    new = publish(tmp_path, "2026-05-01", "p2", ["c"])  # replaced p1: the catalog's marker is p2's
    pending = publish(tmp_path, "2026-05-02", "p3", ["x"], commit=False)  # written, never committed
    other = publish(tmp_path, "2026-05-03", "p4", ["d"])
    catalog = [p for p in old if p.table != "pipeline_runs"] + new + pending + other
    con = duckdb.connect()
    assert register_views(con, catalog, "pc")["quarantine"] == 2
    rows = con.execute("SELECT dt, call_id, run_id FROM quarantine ORDER BY dt, call_id").fetchall()
    assert rows == [("2026-05-01", "c", "p2"), ("2026-05-03", "d", "p4")]
    assert con.execute("SELECT dt, publish_id FROM pipeline_runs ORDER BY dt").fetchall() == [
        ("2026-05-01", "p2"), ("2026-05-03", "p4")]
    columns = [r[0] for r in con.execute("DESCRIBE calls").fetchall()]
    assert columns == [*names(WAREHOUSE["calls"]), "dt"]


def test_an_empty_catalog_gives_empty_views_with_the_tables_columns():
    con = duckdb.connect()
    register_views(con, [], "pc")
    for table in WAREHOUSE:
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        keys = ["dt", "batch"] if table in BATCH_TABLES else ["dt"]
        assert [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()] == [*names(WAREHOUSE[table]), *keys]


def test_label_batches_show_their_current_write(tmp_path):
    parts = []
    for batch, ids in (("import-1", ["a", "b"]), ("reorder_button-2026-12-01", ["c"])):
        folder = tmp_path / "labels" / "dt=2026-12-02" / f"batch={batch}" / "write=w2"
        write(folder, "labels", [{"label_id": i, "brand": "x"} for i in ids])
        parts.append(Partition("pc", "labels", {"dt": "2026-12-02", "batch": batch}, str(folder)))
    write(tmp_path / "labels" / "dt=2026-12-02" / "batch=import-1" / "write=w1", "labels", [{"label_id": "old"}])
    con = duckdb.connect()
    assert register_views(con, parts, "pc")["labels"] == 2
    assert con.execute("SELECT dt, batch, label_id FROM labels ORDER BY label_id").fetchall() == [
        ("2026-12-02", "import-1", "a"), ("2026-12-02", "import-1", "b"), ("2026-12-02", "reorder_button-2026-12-01", "c")]


def test_a_pipeline_runs_row_written_before_columns_were_added_reads_them_as_null(tmp_path):
    parts = publish(tmp_path, "2026-05-01", "p1", [])
    marker = tmp_path / "pipeline_runs" / "dt=2026-05-01" / "publish_id=p1" / "part-0.parquet"
    old = pq.read_table(marker)
    pq.write_table(old.drop([c for c in old.column_names if c.startswith(("audit_", "prefilter_recall_"))]), marker)
    con = duckdb.connect()
    register_views(con, parts, "pc")
    assert con.execute("SELECT run_id, videos, audit_drawn, prefilter_recall_estimate FROM pipeline_runs").fetchall() \
        == [("p1", 3, None, None)]
