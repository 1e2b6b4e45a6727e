"""The nightly DAG end to end (Airflow `dags test` -> spark-submit -> tables), in three runs
that share one warehouse (each run costs minutes of fixed start-up, so the scenarios share them).

One module (about 650 lines) on purpose: every scenario reads the one warehouse its module
fixture fills, and a second module would pay the fixture's DAG runs again (about 6 minutes on
2 cores); splitting it would mean moving the fixture to a session-scoped conftest that the
scheduler test would start too, for nothing. Shared helpers live in `e2e_support.py`,
`hostile_files.py` and `poll_reader.py`.

The scenarios:

- YESTERDAY: the hostile day's good files alone, through models brought as TorchScript files
  (`percolate models register`), picked by the DAG's params through an alias: their own
  classes reach the tables. It runs through `percolate backfill`.
- TODAY: the good files again, among broken and hostile ones (see `hostile_files`), through
  the seeded built-in models (`production`). Bad files are quarantined with their reason; the
  good calls are sampled exactly as on the day without the bad files.
- Seeded defects in TODAY's staged outputs stop the publish, leaving both days untouched
  (the publish job alone, no DAG run).
- TODAY again, after the uploader fixed one file: the file is processed, nothing else
  changes (the rerun is idempotent and touches its own date only), nothing is duplicated.
- TODAY's publish killed (SIGKILL) at several points while an analyst polls every table:
  no read is torn; the rerun publishes exactly once.
- On the same warehouse: the analysts' queries on DuckDB, Spark SQL and the Thrift server
  (beeline), refused writes over JDBC, imported labels, a shadow scoring of the production pair,
  a backfill dry run (also through the DAG's `dry_run` param) and `--only-failed`.

The warehouse's metastore is PostgreSQL (`infra/postgres.sh`), so readers and writers run at once.

Models here are small untrained-but-real torch networks from a fixed seed or fixed weights:
quality is the models' tests' business, plumbing is this one's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from analysts_queries import analysts_queries
from e2e_support import (beeline, jdbc_differences, register_seeded_models, remove_other_publishes, snapshots,
                         start_poll_reader, stop_poll_reader, without_volatile)
from hostile_files import build_calls, put_day
from media import decode_jpeg, make_video
from percolate.core.layout import record_outcome, run_outcome_path, run_summary_path, video_key
from percolate.core.settings import Settings
from percolate.io.lease import open_leases
from percolate.io.manifest import read_manifest, write_manifest
from percolate.io.stage import open_stage
from percolate.io.store import LocalStore
from percolate.report import format_funnel
from workflows.cli import main as cli_main
from workflows.launch import base_env, run_nightly, spark_submit, spark_submit_cmd

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.airflow, pytest.mark.spark]
YESTERDAY, TODAY = "2026-05-01", "2026-05-02"
TIME_LIMIT_S = 90.0  # through PERCOLATE_DECODE_TIME_LIMIT_S: the setting must reach the Spark job
TEAS = ["green tea", "black tea", "chai"]


class ColourPrefilter(nn.Module):
    """How red the frame is, peaking where it is reddest (a stand-in for someone's own
    prefilter; it exports its location map, so a `--crop` heavy model may follow it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_map(x).amax(dim=(1, 2))

    @torch.jit.export
    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x[:, 0] - x[:, 2], 6) * 4.0 + 2.0  # (N, h, w)


class TeaClassifier(nn.Module):
    """none + 3 teas from the mean colour and brightness, with fixed weights."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0],
                                               [0.0, 0.0, 2.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def register_own_models(root: Path) -> None:
    """The TorchScript models, registered through the CLI under the alias `tea` (not production)."""
    pf, hv = root / "prefilter.pt", root / "tea.pt"
    torch.jit.save(torch.jit.script(ColourPrefilter()), str(pf))
    torch.jit.save(torch.jit.script(TeaClassifier()), str(hv))
    assert cli_main(["models", "register", "--role", "prefilter", "--file", str(pf), "--input-size", "96x54",
                     "--threshold", "0.0", "--alias", "tea"]) == 0
    assert cli_main(["models", "register", "--role", "heavy", "--file", str(hv), "--input-size", "64x64",
                     "--crop", "0.6", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
                     "--classes", ",".join(TEAS), "--threshold", "0.0", "--min-frames", "1",
                     "--alias", "tea"]) == 0


@pytest.fixture(scope="module")
def env(tmp_path_factory, postgres):
    root = tmp_path_factory.mktemp("nightly")
    # the shared (PostgreSQL) metastore: readers and writers at once, as in production
    metastore = postgres.new_metastore()
    settings = Settings(home=root / "home", store_uri=str(root / "store"), metastore_url=metastore,
                        metastore_reader_url=postgres.reader_url(metastore))
    store = LocalStore(settings.store_uri)
    good, bad = build_calls(root / "work")
    put_day(store, YESTERDAY, list(good.values()))  # the good files alone
    put_day(store, TODAY, list(good.values()) + list(bad.values()))
    mp = pytest.MonkeyPatch()
    mp.setenv("PERCOLATE_HOME", str(settings.home))
    mp.setenv("PERCOLATE_STORE", settings.store_uri)
    mp.setenv("PERCOLATE_METASTORE_URL", settings.metastore_url)
    mp.setenv("PERCOLATE_DECODE_TIME_LIMIT_S", str(TIME_LIMIT_S))
    register_seeded_models(store)  # v0001 of each role, production
    register_own_models(root)  # v0002 of each role, alias "tea"
    # YESTERDAY through `percolate backfill` (the same DAG), TODAY as the nightly command runs it
    assert cli_main(["backfill", "--start", YESTERDAY, "--end", YESTERDAY,
                     "--prefilter-model", "tea", "--heavy-model", "tea"]) == 0
    summaries = {YESTERDAY: json.loads(run_summary_path(settings.reports_dir, YESTERDAY).read_text()),
                 TODAY: json.loads(run_nightly(settings, TODAY).read_text())}
    exact = snapshots(settings, [YESTERDAY, TODAY], exact=True)  # one Spark child process for all
    published = {day: without_volatile(exact[day], {"dt"}) for day in (YESTERDAY, TODAY)}
    yield SimpleNamespace(settings=settings, store=store, good=good, bad=bad, summaries=summaries,
                          exact=exact, published=published, root=root)
    mp.undo()


def by_call(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["call_id"], []).append(r)
    return out


def test_bad_files_are_quarantined_and_good_calls_sampled_as_without_them(env):
    good, bad = env.good, env.bad
    summary = env.summaries[TODAY]
    assert summary["status"] == "success"
    assert (summary["videos"], summary["videos_ok"], summary["videos_quarantined"]) == (
        len(good) + len(bad), len(good), len(bad))
    today, yesterday = env.published[TODAY], env.published[YESTERDAY]
    assert {r["call_id"] for r in yesterday["frame_predictions"]} == set(good)

    # every bad file is in quarantine with its reason and a message; nothing else is
    assert {r["call_id"]: r["reason"] for r in today["quarantine"]} == {c: b.reason for c, b in bad.items()}
    assert all(r["message"] and r["video_key"] and r["user_id"] for r in today["quarantine"])
    assert yesterday["quarantine"] == []

    # every good call has one prediction row per second of video, in the right second
    frames = by_call(today["frame_predictions"])
    assert set(frames) == set(good)
    for call_id, call in good.items():
        assert [r["frame_index"] for r in frames[call_id]] == call.buckets, call_id
        for r in frames[call_id]:
            assert r["frame_index"] * 1000 <= r["ts_ms"] < (r["frame_index"] + 1) * 1000, (call_id, r)
    assert [r["ts_ms"] for r in frames["vfr-mp4"]] == [0, 1200, 2100, 3500]  # first frame of each second

    # the good calls were sampled exactly as on the day without the bad files (the same frames,
    # the same pixels: the models, whichever they are, see the same inputs)
    assert sampled_frames(env, TODAY) == sampled_frames(env, YESTERDAY)

    # the decode limits came from the environment, through the job, into every row's provenance
    sampler = json.loads(today["frame_predictions"][0]["sampler"])
    assert sampler["limits"]["time_limit_s"] == TIME_LIMIT_S and sampler["limits"]["isolated"] is True


def stage_of(env, day: str):
    """The stage data of the fixture's run of `day`."""
    return open_stage(env.settings, env.summaries[day]["run_id"])


def sampled_frames(env, day: str) -> list[tuple]:
    path = stage_of(env, day).uri("sample_frames", day, "frames")
    rows = pq.read_table(path, columns=["call_id", "frame_index", "ts_ms", "width", "height", "jpeg"]).to_pylist()
    return sorted((r["call_id"], r["frame_index"], r["ts_ms"], r["width"], r["height"], r["jpeg"]) for r in rows)


def test_own_torchscript_models_picked_by_params_publish_their_own_classes(env):
    summary = env.summaries[YESTERDAY]
    assert summary["status"] == "success"
    assert (summary["prefilter_version"], summary["heavy_version"]) == ("v0002", "v0002")
    day = env.exact[YESTERDAY]
    frames, daily = day["frame_predictions"], day["user_brand_daily"]
    # threshold 0: every sampled frame reaches the heavy model and gets one of the model's own classes
    assert len(frames) == summary["sampled_frames"] == summary["prefilter_passed"] > 0
    assert {r["label"] for r in frames} <= set(TEAS)
    assert {(r["prefilter_version"], r["heavy_version"]) for r in frames} == {("v0002", "v0002")}
    assert daily and {r["brand"] for r in daily} <= set(TEAS) and all(r["confirmed"] for r in daily)
    (run,) = day["pipeline_runs"]
    assert run["run_id"] == summary["run_id"]

    # the analysts' command line sees the same tables, as one JSON document (in its own
    # process, as analysts run it: a JVM left here would hold the embedded metastore)
    out = subprocess.run([str(Path(sys.executable).parent / "percolate"), "query", "--json",
                          f"SELECT count(*) AS n FROM frame_predictions WHERE dt = '{YESTERDAY}'"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["rows"] == [{"n": len(frames)}]


def same_answers(got: list[list[dict]], want: list[list[dict]]) -> bool:
    """Equal row for row, values compared as JSON would carry them, floats to 9 digits."""
    def norm(v):
        if isinstance(v, float):
            return round(v, 9)
        return v if isinstance(v, (int, str, bool, type(None))) else str(v).replace("T", " ")
    return [[{k: norm(v) for k, v in r.items()} for r in rows] for rows in got] == [
        [{k: norm(v) for k, v in r.items()} for r in rows] for rows in want]


def test_the_analysts_example_queries_answer(env):
    from workflows.query import query_here, run_queries
    from workflows.sql_guard import check_read_only

    queries = analysts_queries()
    assert len(queries) == 8
    answers = run_queries(env.settings, [check_read_only(q) for q in queries])
    brands, _week, trend, coverage, per_call, reasons, models, _labels = answers  # labels: checked after an import
    # DuckDB over the partitions the catalog publishes answers the same (what `percolate query` uses here)
    assert same_answers(query_here(env.settings, queries, read_only=True, engine="duckdb"), answers)
    assert {r["dt"] for r in brands} == {YESTERDAY, TODAY} and all(r["users"] > 0 for r in brands)
    assert [(r["dt"], r["videos"]) for r in trend] == [(YESTERDAY, len(env.good)), (TODAY, len(env.good))]
    assert [(r["dt"], r["videos_quarantined"]) for r in coverage] == [(YESTERDAY, 0), (TODAY, len(env.bad))]
    assert sum(r["videos"] for r in reasons) == len(env.bad)
    assert [(r["dt"], r["status"], r["videos"]) for r in per_call if r["dt"] == TODAY and r["status"] == "ok"] == [
        (TODAY, "ok", len(env.good))]
    assert sum(r["videos"] for r in per_call if r["dt"] == TODAY and r["status"] != "ok") == len(env.bad)
    assert sum(r["sampled_frames"] for r in per_call if r["dt"] == TODAY) == env.summaries[TODAY]["sampled_frames"]
    assert [(r["dt"], r["prefilter_version"], r["heavy_version"]) for r in models] == [
        (YESTERDAY, "v0002", "v0002"), (TODAY, "v0001", "v0001")]


def test_a_jdbc_client_gets_the_same_answers_and_can_only_read(env, tmp_path):
    from workflows import thrift_server
    from workflows.query import query_here

    queries = analysts_queries()
    answers = query_here(env.settings, queries, read_only=True, engine="duckdb")
    port = free_port()
    thrift_server.start(env.settings, port)
    try:
        url = thrift_server.jdbc_url(env.settings, port)
        for sql, want in zip(queries, answers):
            got = beeline(url, sql)
            assert isinstance(got, list), (sql, got)
            assert not jdbc_differences(got, want), (sql, jdbc_differences(got, want))
        assert any(r["tableName"] == "frame_predictions" for r in beeline(url, "SHOW TABLES"))
        before = beeline(url, "SELECT count(*) AS n FROM frame_predictions")
        assert int(before[0]["n"]) > 0
        # whatever the client sends, the server only reads (each refused before it runs)
        refused = {
            "DROP TABLE frame_predictions": "DropTable is refused",
            "DROP VIEW frame_predictions": "is refused",
            "SELECT reflect('java.lang.System', 'getenv', 'HOME')": "reflect() is refused",
            "SELECT * FROM (SELECT java_method('java.lang.System', 'getenv') AS e) t": "java_method() is refused",
            f"INSERT OVERWRITE DIRECTORY '{tmp_path}/out' SELECT * FROM calls": "is refused",
            "CREATE TABLE stolen AS SELECT * FROM calls": "is refused",
            "SET spark.sql.runSQLOnFiles=true": "settings cannot be changed",
        }
        for sql, why in refused.items():
            got = beeline(url, sql)
            assert isinstance(got, str) and why in got, (sql, got)
        got = beeline(url, f"SELECT * FROM parquet.`{env.settings.warehouse_dir}`")  # no reading by path
        assert isinstance(got, str) and "TABLE_OR_VIEW_NOT_FOUND" in got
        assert beeline(url, "SELECT count(*) AS n FROM frame_predictions") == before
        assert not (tmp_path / "out").exists()
    finally:
        thrift_server.stop(env.settings)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_imported_labels_are_checked_row_by_row_and_a_batch_is_replaced_whole(env, tmp_path, capsys):
    from synth import BRAND_NAMES
    from workflows.query import query_here

    ok = [r for r in env.published[TODAY]["calls"] if r["status"] == "ok"]
    user, call = ok[0]["user_id"], ok[0]["call_id"]
    good = {"user_id": user, "day": TODAY, "brand": BRAND_NAMES[0], "verdict": "confirmed"}
    rows = [good, dict(good, call_id=call, frame_index=ok[0]["sampled_frames"] - 1, verdict="rejected",
                       source="audit"),
            dict(good, brand="Nescafe"), dict(good, day="2026-05-09"), dict(good, verdict="rejected"),
            dict(good, user_id="nobody"), dict(good, call_id=call, frame_index=10_000)]
    path = tmp_path / "labels.csv"
    path.write_text("user_id,day,brand,verdict,call_id,frame_index,source\n" + "".join(
        ",".join(str(r.get(k, "")) for k in ("user_id", "day", "brand", "verdict", "call_id", "frame_index",
                                            "source")) + "\n" for r in rows))
    for _ in range(2):  # importing the same file again replaces its batch: nothing doubles
        assert cli_main(["labels", "import", str(path), "--date", "2026-05-03", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["accepted"], out["quarantined"]) == (2, 5)
        assert out["reasons"] == {"unknown_brand": 1, "from_the_future": 1, "duplicate": 1, "unknown_user_day": 1,
                                  "unknown_frame": 1}
    statements = ["SELECT dt, batch, subject, brand, verdict, source FROM labels ORDER BY subject",
                  "SELECT dt, batch, row_number, reason FROM label_quarantine ORDER BY row_number",
                  analysts_queries()[-1]]  # the analysts' page query on labels
    duck = query_here(env.settings, statements, read_only=True, engine="duckdb")
    assert duck == query_here(env.settings, statements, read_only=True, engine="spark")  # one Spark session
    assert [(r["subject"], r["verdict"], r["source"]) for r in duck[0]] == [
        (f"frame:{call}:{ok[0]['sampled_frames'] - 1}", "rejected", "audit"),
        (f"user_day:{user}:{TODAY}", "confirmed", "import")]
    assert {r["batch"] for r in duck[0] + duck[1]} == {out["batch"]} and [r["row_number"] for r in duck[1]] == [
        3, 4, 5, 6, 7]
    assert [(r["arrived"], r["source"], r["verdict"], r["labels"]) for r in duck[2]] == [
        ("2026-05-03", "audit", "rejected", 1), ("2026-05-03", "import", "confirmed", 1)]


def test_a_shadow_run_of_the_production_pair_reproduces_its_published_rows(env, capsys):
    """`percolate models shadow` with production itself as the challenger: the published run's
    sampled frames scored again by the same models give the published rows (but for provenance)."""
    from workflows.query import query_here

    assert cli_main(["models", "shadow", "--date", TODAY, "--prefilter-model", "production",
                     "--heavy-model", "production", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    published = env.exact[TODAY]
    frames, daily = published["frame_predictions"], published["user_brand_daily"]
    assert (out["batch"], out["frames_run"]) == ("v0001+v0001", env.summaries[TODAY]["run_id"])
    assert out["disagreements"] == [] and out["agree"] == len(daily) > 0
    assert out["champion"] == out["challenger"] == {
        "user_brand_rows": len(daily), "confirmed": sum(r["confirmed"] for r in daily),
        "frames_passed": len(frames), "detections": sum(r["is_detection"] for r in frames)}
    assert out["both"]["frames_passed"] == len(frames) and out["both"]["detections"] == out["champion"]["detections"]
    shadow = query_here(env.settings, [
        f"SELECT * FROM shadow_{table} WHERE dt = '{TODAY}' AND batch = 'v0001+v0001' ORDER BY {keys}"
        for table, keys in (("frame_predictions", "call_id, frame_index"), ("user_brand_daily", "user_id, brand"))],
        read_only=True, engine="duckdb")
    own = {"run_id", "published_at", "code_version", "batch"}  # the shadow run's provenance
    for rows, want in zip(shadow, (frames, daily)):
        assert {r["run_id"] for r in rows} == {out["run_id"]}
        assert [{k: v for k, v in r.items() if k not in own} for r in rows] == [
            {k: v for k, v in r.items() if k not in own} for r in want]


def test_sampled_frames_are_upright(env):
    path = stage_of(env, TODAY).uri("sample_frames", TODAY, "frames")
    frames = pq.read_table(path, columns=["call_id", "frame_index", "width", "height", "jpeg"]).to_pylist()
    got = by_call(frames)
    for rows in got.values():
        for r in rows:
            assert decode_jpeg(r["jpeg"]).shape == (r["height"], r["width"], 3)
    # stored 320x180, displayed rotated 90 degrees clockwise: portrait, the red top-left
    # marker of the test pattern ends up top right
    for r in got["rot90-mp4"]:
        img = decode_jpeg(r["jpeg"])
        assert (r["width"], r["height"]) == (180, 320)
        assert img[10, -10, 0] > 200 and img[10, -10, 2] < 60 and img[10, 10, 0] < 60
    for call_id, size in (("h264-mkv", (320, 180)), ("mjpeg-avi", (320, 180)), ("odd-333x187-mp4", (333, 187)),
                          ("half-second-mp4", (320, 180))):
        for r in got[call_id]:
            img = decode_jpeg(r["jpeg"])
            assert (r["width"], r["height"]) == size, call_id
            assert img[5, 5, 0] > 200 and img[5, -5, 0] < 60, call_id  # marker top left: not turned
    assert {(r["width"], r["height"]) for r in got["gen-hevc-mp4"] + got["gen-vp9-webm"]} == {(640, 360)}


def test_run_summary_shows_warnings_and_the_data_docs(env):
    summary = env.summaries[TODAY]
    warnings = json.loads(summary["warnings"])
    assert f"{len(env.bad)} videos quarantined" in warnings
    # the manifest's warning-level expectation: objects of 0 bytes (the empty and the missing file)
    assert any(w.startswith("manifest: expect_column_values_to_be_between(size_bytes, > 0) failed: 2 of")
               for w in warnings), warnings
    docs = Path(summary["data_docs"])
    assert docs.name == "index.html" and docs.is_file()
    index = docs.read_text(errors="replace")  # built for this run: it lists this run's validations
    assert all(f"{summary['run_id']}-{suite}" in index for suite in ("manifest", "video_outcomes", "frame_predictions"))
    (row,) = env.exact[TODAY]["pipeline_runs"]  # pipeline_runs records the same
    assert json.loads(row["warnings"]) == warnings and row["data_docs"] == str(docs)

    text = format_funnel(summary)  # what `percolate nightly` prints
    assert f"Data docs: {docs}" in text
    assert f"Warnings ({len(warnings)}):" in text and f"  - {len(env.bad)} videos quarantined" in text
    log = (env.settings.home / "logs" / f"nightly-{TODAY}.log").read_text()  # the DAG's report task
    assert f"Data docs: {docs}" in log and f"- {len(env.bad)} videos quarantined" in log


# ---- seeded defects in staged outputs --------------------------------------------------------


def out_of_range_scores(df):
    df.loc[df.index[:2], "score"] = [1.7, -0.2]
    return df


def null_user_ids(df):
    df.loc[df["call_id"] == "h264-mkv", "user_id"] = None
    return df


def duplicated_frames(df):
    import pandas as pd

    return pd.concat([df, df[df["call_id"] == "mjpeg-avi"].head(1)], ignore_index=True)


def unknown_brand(df):
    df.loc[df.index[2], "label"] = "Acme Beans"
    df.loc[df.index[2], "is_detection"] = True
    return df


# defect -> (what the failure must name: the expectation and the offending values)
DEFECTS = {
    out_of_range_scores: ("expect_column_values_to_be_between(score, 0..1) failed: 2 of", ["1.7", "-0.2"]),
    null_user_ids: ("expect_column_values_to_not_be_null(user_id) failed: 3 of", ["are null"]),
    duplicated_frames: ("expect_compound_columns_to_be_unique((call_id, frame_index)) failed: 2 of",
                        ["('mjpeg-avi', 0)"]),
    unknown_brand: ("expect_column_values_to_be_in_set(label, in {", ["'Acme Beans'"]),
}


def write_stage(folder: Path, table: pa.Table) -> None:
    shutil.rmtree(folder)
    folder.mkdir()
    pq.write_table(table, folder / "part-00000-seeded.parquet")


def test_seeded_defects_stop_the_publish_and_leave_published_days_untouched(env, tmp_path):
    from expectations import ValidationFailed
    from synth import BRAND_NAMES
    from percolate.handover import check

    settings = env.settings
    run_id = env.summaries[TODAY]["run_id"]
    heavy = Path(open_stage(settings, run_id).uri("heavy", TODAY))
    clean = pq.read_table(heavy)
    shutil.copytree(heavy, tmp_path / "heavy")
    before = {day: env.exact[day] for day in (YESTERDAY, TODAY)}  # as the fixture's runs published them

    def seeded(*defects) -> pa.Table:
        df = clean.to_pandas()
        for defect in defects:
            df = defect(df)
        return pa.Table.from_pandas(df, schema=clean.schema, preserve_index=False)

    try:
        # each defect alone, at the hand-over the DAG's validate_predictions task checks before publish
        for defect, (expectation, values) in DEFECTS.items():
            write_stage(heavy, seeded(defect))
            if defect is null_user_ids:  # tolerated here (a warning): the rows to publish must have users
                report = check(settings, "heavy_predictions", TODAY, run_id, class_names=list(BRAND_NAMES))
                assert any("expect_column_values_to_not_be_null(user_id)" in w for w in report.warnings)
                continue
            with pytest.raises(ValidationFailed) as err:
                check(settings, "heavy_predictions", TODAY, run_id, class_names=list(BRAND_NAMES))
            assert expectation in str(err.value) and all(v in str(err.value) for v in values), str(err.value)

        # the publish job's own audit (write, audit, publish) on all four at once: each is a
        # critical failure of the rows about to be published (one alone fails the audit)
        write_stage(heavy, seeded(*DEFECTS))
        with pytest.raises(RuntimeError, match="spark job publish failed"):
            spark_submit(settings, "publish", ["--date", TODAY, "--run-id", run_id], log_name="publish-defects")
        log = (settings.home / "logs" / "publish-defects.log").read_text()
        assert "ValidationFailed: validation of 'frame_predictions' failed (4 critical)" in log
        for expectation, values in DEFECTS.values():
            assert expectation in log and all(v in log for v in values), expectation
    finally:
        shutil.rmtree(heavy)
        shutil.copytree(tmp_path / "heavy", heavy)
        open_leases(settings).release(TODAY, run_id)  # as the DAG's failure callback does

    after = snapshots(settings, [YESTERDAY, TODAY], exact=True)
    assert {day: after[day] for day in before} == before  # not a row, not a run id, not a timestamp changed


# ---- after the seeded defects (which must have left the tables as they were) ------------------


def test_rerun_after_fixing_a_file_processes_it_and_loses_nothing(env):
    settings, store = env.settings, env.store
    before = env.published
    fixed = make_video(env.root / "work" / "fixed.mp4", n=90)
    key = video_key(TODAY, "bad-text", "mp4")
    store.put_file(key, fixed)  # the uploader sends the real video
    rows = read_manifest(store, TODAY)
    for r in rows:
        if r["call_id"] == "bad-text":
            r["size_bytes"] = os.path.getsize(fixed)
    write_manifest(store, TODAY, rows)

    summary = json.loads(run_nightly(settings, TODAY).read_text())
    after = snapshots(settings, [YESTERDAY, TODAY], drop={"dt"},
                      extra=[f"SELECT run_id FROM pipeline_runs WHERE dt = '{TODAY}'"])
    assert summary["videos_ok"] == len(env.good) + 1
    assert after[YESTERDAY] == before[YESTERDAY]
    expected = {c: b.reason for c, b in env.bad.items() if c != "bad-text"}
    assert {r["call_id"]: r["reason"] for r in after[TODAY]["quarantine"]} == expected

    rows = after[TODAY]["frame_predictions"]
    keys = [(r["call_id"], r["frame_index"]) for r in rows]
    assert len(keys) == len(set(keys))  # no duplicates
    assert [r["frame_index"] for r in rows if r["call_id"] == "bad-text"] == [0, 1, 2]
    # every other row is still there, unchanged
    assert [r for r in rows if r["call_id"] != "bad-text"] == before[TODAY]["frame_predictions"]
    assert len(after[TODAY]["pipeline_runs"]) == 1
    assert after["extra"] == [[{"run_id": summary["run_id"]}]]  # the rerun's row replaced the first run's
    assert summary["run_id"] != env.summaries[TODAY]["run_id"]


def file_tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_a_backfill_dry_run_estimates_the_range_and_writes_nothing(env, capsys):
    settings = env.settings
    before = file_tree(settings.home), file_tree(Path(settings.store_uri))
    assert cli_main(["backfill", "--start", YESTERDAY, "--end", "2026-05-03", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (file_tree(settings.home), file_tree(Path(settings.store_uri))) == before

    days = {d["date"]: d for d in plan["dates"]}
    yesterday, today = env.summaries[YESTERDAY], json.loads(run_summary_path(settings.reports_dir, TODAY).read_text())
    # every video of YESTERDAY ran: its hours are the calls table's, not an estimate
    assert days[YESTERDAY]["videos"] == yesterday["videos"] and days[YESTERDAY]["hours_estimated_for"] == 0
    assert days[YESTERDAY]["video_hours"] == round(yesterday["video_seconds"] / 3600, 3)
    assert days[TODAY]["videos"] == today["videos"]
    assert days[TODAY]["hours_estimated_for"] == today["videos_quarantined"]  # no duration: from their size
    assert days[TODAY]["cost_usd"] > 0 and days[TODAY]["heavy_model_frames"] > 0
    assert days["2026-05-03"]["videos"] == 0 and "no manifest" in days["2026-05-03"]["note"]
    assert plan["total"]["videos"] == yesterday["videos"] + today["videos"]
    assert sorted(plan["rates"]["days"]) == [YESTERDAY, TODAY]

    # the same estimate from a manual trigger of the DAG with `dry_run` (and sampler params):
    # only Airflow's own records change
    conf = {"dry_run": True, "sample_fps": 2, "prefilter_model": "production"}
    out = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "test", "percolate_nightly", TODAY,
                          "--conf", json.dumps(conf)], env=base_env(settings), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "dry run: nothing was written" in out.stdout + out.stderr
    assert "Marking task as FAILED" not in out.stdout + out.stderr
    kept = {k: v for k, v in file_tree(settings.home).items() if not k.startswith(("airflow/", "logs/"))}
    assert kept == {k: v for k, v in before[0].items() if not k.startswith(("airflow/", "logs/"))}
    assert file_tree(Path(settings.store_uri)) == before[1]


def test_only_failed_redoes_only_the_dates_whose_last_run_failed(env, capsys):
    settings = env.settings
    assert cli_main(["backfill", "--start", YESTERDAY, "--end", TODAY, "--only-failed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dates": []}  # both succeeded: nothing to run
    outcome = run_outcome_path(settings.reports_dir, YESTERDAY)
    saved = outcome.read_text()
    try:
        record_outcome(settings.reports_dir, YESTERDAY, "failed", "forced", "a forced failure")
        assert cli_main(["backfill", "--start", YESTERDAY, "--end", TODAY, "--only-failed", "--dry-run",
                         "--json"]) == 0
        assert [d["date"] for d in json.loads(capsys.readouterr().out)["dates"]] == [YESTERDAY]
    finally:
        outcome.write_text(saved)


def test_a_run_over_its_budget_is_refused_before_any_spark_job(env, capsys):
    """The fixture's runs recorded their plan; a date over its budget (`percolate nightly
    --budget-usd`) fails in the `budget` task, estimated from the fixture's runs: nothing is
    sampled, the outcome says why, the lease is free."""
    settings, day = env.settings, "2026-05-10"
    today = json.loads(run_summary_path(settings.reports_dir, TODAY).read_text())
    assert today["cost_estimate_usd"] > 0 and today["sample_fps"] == 1.0
    assert (today["budget_usd"], today["on_over_budget"], today["expected_recall"]) == (None, "refuse", None)
    put_day(env.store, day, list(env.good.values()))
    assert cli_main(["nightly", "--date", day, "--budget-usd", "0.00001", "--on-over-budget", "degrade"]) == 1
    assert "over the budget of $0.000010 (degrade)" in capsys.readouterr().err
    log = (settings.logs_dir / f"nightly-{day}.log").read_text()
    assert "at 0.25 frames/s (rates: history " in log and "SparkSubmitHook" not in log
    assert not Path(open_stage(settings, "any").uri("sample_frames", day)).parent.exists()
    assert json.loads(run_outcome_path(settings.reports_dir, day).read_text())["status"] == "failed"
    assert day not in [lease.date for lease in open_leases(settings).all()]


# ---- last: killed publishes under a polling reader ---------------------------------------------

KILL_AFTER = ("written frame_predictions", "audited", "committed")


def publish_killed_after(settings: Settings, run_id: str, step: str, log: Path) -> bool:
    """Start TODAY's publish and SIGKILL its whole process group (driver JVM and Python) as soon
    as it logs `step`; True if it got there."""
    import signal

    cmd = spark_submit_cmd(settings, "publish", ["--date", TODAY, "--run-id", run_id])
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=base_env(settings), cwd=settings.home, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        for line in proc.stdout:
            out.write(line)
            if f"[percolate] publish step: {step} (" in line:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
        proc.wait()
    return False


def test_a_killed_publish_never_shows_a_torn_date_and_the_rerun_publishes_once(env, tmp_path):
    import time

    settings = env.settings
    run_id = json.loads(run_summary_path(settings.reports_dir, TODAY).read_text())["run_id"]  # the rerun's
    before = snapshots(settings, [TODAY], exact=True)[TODAY]
    reader = start_poll_reader(settings, [TODAY], tmp_path)
    try:
        for step in KILL_AFTER:
            assert publish_killed_after(settings, run_id, step, tmp_path / f"publish-{step}.log"), step
        # with the usual retention: the reader may still be reading the publishes it replaces
        spark_submit(settings, "publish", ["--date", TODAY, "--run-id", run_id], log_name="publish-after-kills")
        time.sleep(3)  # a few polls of the final state
    finally:
        polls = stop_poll_reader(reader)
    # the reader gone, what a day's retention would remove: every publish but the committed one
    assert remove_other_publishes(settings, TODAY)

    # the published counts never change (every publish here has the same inputs); each table's
    # rows at every poll come from one publish: never empty, never a mix
    expected = {t: len(rows) for t, rows in before.items()}
    assert all(expected[t] for t in expected)
    times = set()
    for poll in polls:
        assert set(poll["dates"][TODAY]) == set(expected), poll  # no table ever empty
        for table, seen in poll["dates"][TODAY].items():
            assert seen["n"] == expected[table] and len(seen["at"]) == 1, (table, poll)
            times.add(seen["at"][0])
    assert len(polls) >= 20 and len(times) >= 2  # the reader saw the old publish and a new one

    # the rerun published exactly once: its publish is the only one left of the date
    final = snapshots(settings, [TODAY], exact=True,
                      extra=[f"SELECT publish_id, run_id FROM pipeline_runs WHERE dt = '{TODAY}'"])
    assert without_volatile(final[TODAY]) == without_volatile(before)  # the same rows, published again
    (committed,) = final["extra"][0]
    assert committed["run_id"] == run_id
    for table in ("frame_predictions", "user_brand_daily", "quarantine", "calls", "pipeline_runs"):
        folder = settings.warehouse_dir / "publishes" / settings.database / table / f"dt={TODAY}"
        assert [p.name for p in folder.iterdir()] == [f"publish_id={committed['publish_id']}"], table
