"""Airflow for real (`workflows.services`: api-server, scheduler, dag-processor, triggerer on
PostgreSQL metadata, LocalExecutor), on a PostgreSQL metastore:

- once the DAG is unpaused, the scheduler runs the latest scheduled date of the nightly DAG by
  itself, end to end, and the UI's REST API shows the run and the DAG's docs;
- meanwhile Airflow's own `airflow backfill create` runs an earlier date, and an analyst polls
  both dates: both runs succeed, no read is torn, and the backfilled date's rows equal the
  scheduled date's (the same calls were stored on both days).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.request
from types import SimpleNamespace

import pytest

from e2e_support import register_seeded_models, snapshots, start_poll_reader, stop_poll_reader
from hostile_files import build_calls, put_day
from percolate.core.settings import Settings
from percolate.io.store import LocalStore
from workflows import services
from workflows.launch import base_env
from workflows.services import airflow

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.spark, pytest.mark.integration]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def airflow_up(tmp_path_factory, postgres):
    root = tmp_path_factory.mktemp("scheduler")
    settings = Settings(home=root / "home", store_uri=str(root / "store"), metastore_url=postgres.new_metastore())
    # the latest complete daily interval: the one the scheduler runs as soon as the DAG is unpaused
    date = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date()
    date, backfilled = date.isoformat(), (date - dt.timedelta(days=1)).isoformat()
    store = LocalStore(settings.store_uri)
    good, _bad = build_calls(root / "work")
    for day in (date, backfilled):
        put_day(store, day, list(good.values()))
    register_seeded_models(store)
    env = base_env(settings)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = postgres.new_database("airflow").replace(
        "postgresql://", "postgresql+psycopg2://")
    port = free_port()
    services.start(settings, port, env=env)
    try:
        yield SimpleNamespace(settings=settings, date=date, backfilled=backfilled, good=good, root=root,
                              env=services.airflow_env(settings, port, env), url=f"http://127.0.0.1:{port}")
    finally:
        services.stop(settings)


def api(up, method: str, path: str, body: dict | None = None) -> dict:
    with urllib.request.urlopen(f"{up.url}/auth/token", timeout=30) as r:  # no login on loopback
        token = json.loads(r.read())["access_token"]
    request = urllib.request.Request(f"{up.url}/api/v2{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def finished_run(up, run_type: str, deadline: float) -> dict:
    while True:
        runs = api(up, "GET", "/dags/percolate_nightly/dagRuns")["dag_runs"]
        run = next((r for r in runs if r["run_type"] == run_type), None)
        if run and run["state"] in ("success", "failed"):
            return run
        assert time.time() < deadline, f"no finished {run_type} run in time: {runs}"
        time.sleep(5)


def test_the_scheduler_and_a_backfill_run_at_once_under_a_polling_reader(airflow_up, tmp_path):
    up = airflow_up
    deadline = time.time() + 120
    while not any(d["dag_id"] == "percolate_nightly" for d in api(up, "GET", "/dags")["dags"]):
        assert time.time() < deadline, "the dag-processor did not parse the DAG"
        time.sleep(3)
    details = api(up, "GET", "/dags/percolate_nightly/details")
    assert "Percolate nightly" in details["doc_md"] and details["is_paused"]

    reader = start_poll_reader(up.settings, [up.date, up.backfilled], tmp_path)
    try:
        api(up, "PATCH", "/dags/percolate_nightly", {"is_paused": False})  # the scheduler takes over
        airflow(up.env, "backfill", "create", "--dag-id", "percolate_nightly", "--from-date", up.backfilled,
                "--to-date", up.backfilled, "--reprocess-behavior", "failed", "--max-active-runs", "1",
                "--dag-run-conf", json.dumps({"drift_reference_before": up.backfilled}))
        deadline = time.time() + 900
        runs = {kind: finished_run(up, kind, deadline) for kind in ("scheduled", "backfill")}
    finally:
        polls = stop_poll_reader(reader)

    for kind, run in runs.items():
        tasks = api(up, "GET", f"/dags/percolate_nightly/dagRuns/{run['dag_run_id']}/taskInstances")
        assert run["state"] == "success", (kind, [(t["task_id"], t["state"]) for t in tasks["task_instances"]])
    # the scheduled run processed the day before its own: its data interval's start
    scheduled, backfill = runs["scheduled"], runs["backfill"]
    assert scheduled["logical_date"].startswith(up.date) and scheduled["data_interval_start"].startswith(up.date)
    assert backfill["logical_date"].startswith(up.backfilled)

    final = snapshots(up.settings, [up.date, up.backfilled], drop={"dt", "video_key"},  # keys name the date
                      extra=["SELECT dt, run_id, videos FROM pipeline_runs ORDER BY dt"])
    assert final["extra"][0] == [{"dt": up.backfilled, "run_id": backfill["dag_run_id"], "videos": len(up.good)},
                                 {"dt": up.date, "run_id": scheduled["dag_run_id"], "videos": len(up.good)}]
    assert final[up.backfilled] == final[up.date]  # same calls, same models: the same rows
    # every poll saw each table of each date either not yet published or whole (one publish, all
    # its rows). Across tables, one Spark statement plans each view's read of the commit marker
    # separately, so a poll at the instant of a commit may see it in one table and not yet in
    # another (docs/pipeline.md); DuckDB reads one snapshot of the catalog.
    counts = {t: len(rows) for t, rows in final[up.date].items() if rows}
    # no quarantine
    assert set(counts) == {"frame_predictions", "user_brand_daily", "calls", "audit_frames", "pipeline_runs"}
    for poll in polls:
        for day, seen in poll["dates"].items():
            assert all(s["n"] == counts[t] and len(s["at"]) == 1 for t, s in seen.items()), (day, poll)
    assert polls[-1]["dates"][up.date] and polls[-1]["dates"][up.backfilled]

    with urllib.request.urlopen(f"{up.url}/", timeout=30) as r:  # the UI itself
        assert r.status == 200 and "<html" in r.read().decode().lower()
