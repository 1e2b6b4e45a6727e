"""The DAG folder imports cleanly, cheaply, and has the expected shape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from percolate.core.tuning import submit_confs

pytestmark = pytest.mark.airflow
DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "percolate_nightly" in dagbag.dags


def test_nightly_shape(dagbag):
    dag = dagbag.dags["percolate_nightly"]
    assert {"percolate", "nightly"} <= set(dag.tags)
    assert dag.doc_md and "logical date" in dag.doc_md
    assert dag.catchup is False and dag.max_active_runs == 1
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {
        "plan": ["check_inputs"], "check_inputs": ["resolve_models"], "resolve_models": ["budget"],
        "budget": ["sample_frames"],
        "sample_frames": ["validate_frames"], "validate_frames": ["validate_scores"],
        "validate_scores": ["heavy"],
        "heavy": ["validate_predictions"], "validate_predictions": ["publish"],
        "publish": ["report"], "report": [],
    }
    for task in dag.tasks:
        if task.task_id in ("plan", "check_inputs", "budget") or task.task_id.startswith("validate_"):
            assert task.retries == 0, task.task_id  # bad data is not fixed by retrying
        else:
            assert task.retries >= 1, task.task_id
    spark_tasks = [t for t in dag.tasks if t.task_type == "GuardedSparkSubmitOperator"]  # percolate.spark_operator
    assert sorted(t.task_id for t in spark_tasks) == ["heavy", "publish", "sample_frames"]
    for task in spark_tasks:
        assert task._conn_id == "spark_default"
        assert task.application.endswith(f"jobs/{task.task_id}.py") and Path(task.application).is_file()
        assert "{{ ds }}" in task.application_args and "{{ run_id }}" in task.application_args
        assert task.conf == submit_confs()  # the measured driver memory and JVM options
    assert set(dag.params.keys()) == {"prefilter_model", "heavy_model", "drift_reference_before", "sample_fps",
                                      "decode_time_limit_s", "dry_run", "budget_usd", "on_over_budget"}
    sample = next(t for t in spark_tasks if t.task_id == "sample_frames")
    assert sample.application_args[-6:] == ["--fps", "{{ ti.xcom_pull(task_ids='budget')['fps'] }}",
                                            "--time-limit-s", "{{ params.decode_time_limit_s or '' }}",
                                            "--prefilter-version",  # the fused hand-over: scored as sampled
                                            "{{ ti.xcom_pull(task_ids='resolve_models')['prefilter'] }}"]
    publish = next(t for t in spark_tasks if t.task_id == "publish")
    assert publish.application_args[-2:] == ["--drift-before", "{{ params.drift_reference_before or ds }}"]


def test_a_scheduled_run_processes_the_day_that_just_ended(dagbag):
    """The run after midnight of D+1 covers [D, D+1): its logical date (`ds`) is D."""
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable

    timetable = coerce_to_core_timetable(dagbag.dags["percolate_nightly"].timetable)  # as the scheduler sees it
    interval = timetable.infer_manual_data_interval(run_after=pendulum.datetime(2026, 12, 1, 0, 0, tz="UTC"))
    assert type(timetable).__name__ == "CronDataIntervalTimetable"
    assert (interval.start.date().isoformat(), interval.end.date().isoformat()) == ("2026-11-30", "2026-12-01")


def test_parsing_imports_nothing_heavy():
    """Nothing heavy at import time: no torch, no pyspark, no project modules."""
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('torch', 'pyspark', 'great_expectations', 'av', 'models.registry') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS / "percolate_nightly.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1:] in ([], [""])


def test_weekly_retrain_shape(dagbag):
    dag = dagbag.dags["percolate_weekly_retrain"]
    assert {"percolate", "weekly"} <= set(dag.tags)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.schedule == "0 6 * * 1"  # weekly: Mondays 06:00 UTC
    edges = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert edges == {"retrain": ["report"], "report": []}
    assert all(t.retries == 0 for t in dag.tasks)  # a rerun would register another challenger
    assert set(dag.params.keys()) == {"weeks", "seed", "dry_run", "plan"}
    assert dag.params["weeks"] == 4 and dag.params["dry_run"] is False
