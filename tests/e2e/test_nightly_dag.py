"""One tiny day through the real nightly DAG (Airflow `dags test` -> spark-submit -> tables).

Checks the contract analysts rely on: the tables exist and are queryable, rerunning a date
gives the same rows (only run ids and timestamps differ) with no duplicates, and no other
date changes. Models here are small untrained-but-real torch networks from a fixed seed:
quality is the models' tests' business, plumbing is this test's.
"""

from __future__ import annotations

import json

import pytest

from e2e_support import register_seeded_models, snapshot
from workflows.cli import main as cli_main
from workflows.query import run_queries
from percolate.core.settings import Settings
from workflows.launch import run_nightly
from percolate.io.store import LocalStore

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.airflow, pytest.mark.spark]
DAY, OTHER_DAY = "2026-04-01", "2026-04-02"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from synth import generate_day

    root = tmp_path_factory.mktemp("e2e")
    settings = Settings(home=root / "home", store_uri=str(root / "store"))
    store = LocalStore(settings.store_uri)
    for day, seed in ((DAY, 11), (OTHER_DAY, 12)):
        generate_day(store, day, calls=3, seed=seed, min_seconds=4, max_seconds=7, workers=1)
    register_seeded_models(store)
    mp = pytest.MonkeyPatch()
    mp.setenv("PERCOLATE_HOME", str(settings.home))
    mp.setenv("PERCOLATE_STORE", settings.store_uri)
    yield settings
    mp.undo()


def test_nightly_twice_is_idempotent_and_touches_only_its_date(env, capsys):
    settings = env
    first_summary = json.loads(run_nightly(settings, DAY).read_text())
    assert first_summary["status"] == "success"
    assert first_summary["sampled_frames"] > 0
    assert first_summary["prefilter_passed"] == first_summary["sampled_frames"]  # threshold 0 passes all
    run_nightly(settings, OTHER_DAY)
    first, other = snapshot(settings, DAY), snapshot(settings, OTHER_DAY)
    assert len(first["frame_predictions"]) == first_summary["sampled_frames"]
    assert len(first["pipeline_runs"]) == 1

    run_nightly(settings, DAY)
    again, other_after = snapshot(settings, DAY), snapshot(settings, OTHER_DAY)
    assert again == first
    assert other_after == other
    runs = run_queries(settings, ["SELECT dt, run_id FROM pipeline_runs ORDER BY dt"])[0]
    assert [r["dt"] for r in runs] == [DAY, OTHER_DAY]
    assert runs[0]["run_id"] != first_summary["run_id"]  # the rerun replaced the row

    # the analysts' command line sees the same tables, as one JSON document
    capsys.readouterr()
    assert cli_main(["query", f"SELECT count(*) AS n FROM frame_predictions WHERE dt = '{DAY}'", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == [{"n": len(first["frame_predictions"])}]
