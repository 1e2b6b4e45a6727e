"""A Spark job's process tree stops when the Airflow task that launched it dies.

Each test starts a stand-in for the task process (a Python parent that launches the command
through `percolate.orphan_guard`, as `GuardedSparkSubmitOperator` does), SIGKILLs it, and
checks that every process of the launched tree is gone within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

GUARD = [sys.executable, "-m", "percolate.orphan_guard", "--grace-s", "2", "--"]
# the task process: launch the guarded command, wait for it (the hook does the same)
TASK = "import subprocess, sys; sys.exit(subprocess.Popen(sys.argv[1:]).wait())"
# a tree like spark-submit's: a process, its children, one that leaves the process group
# (as PySpark's worker daemon does), all sleeping; the last one writes the pid file
TREE = ("sleep 300 & sleep 300 & {py} -c 'import os, time, sys; os.setpgid(0, 0); "
        "open(sys.argv[1], \"w\").write(str(os.getpid())); time.sleep(300)' {pid_file} & wait")


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _tree(pid: int) -> list[psutil.Process]:
    return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]


def _gone_within(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for p in alive:  # do not leave them to the next test
        p.kill()
    return alive


def test_the_tree_stops_when_the_task_process_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    cmd = ["bash", "-c", TREE.format(py=sys.executable, pid_file=pid_file)]
    task = subprocess.Popen([sys.executable, "-c", TASK, *GUARD, *cmd])
    _wait_for(pid_file, 30)
    tree = _tree(task.pid)[1:]
    assert len(tree) >= 5  # guard, bash, 2 x sleep, the daemon-like python
    assert int(pid_file.read_text()) in {p.pid for p in tree}
    os.kill(task.pid, signal.SIGKILL)
    task.wait()
    assert _gone_within(tree, 5) == []


def test_sigterm_to_the_guard_stops_the_tree_and_exits_143(tmp_path):
    """`on_kill`: the operator asks the guard to stop before the provider SIGKILLs it."""
    pid_file = tmp_path / "pid"
    guard = subprocess.Popen([*GUARD, "bash", "-c", TREE.format(py=sys.executable, pid_file=pid_file)])
    _wait_for(pid_file, 30)
    tree = _tree(guard.pid)[1:]
    guard.terminate()
    assert guard.wait(timeout=10) == 143
    assert _gone_within(tree, 5) == []


def test_the_command_runs_to_its_own_exit_status():
    assert subprocess.run([*GUARD, "bash", "-c", "exit 7"], timeout=30).returncode == 7


@pytest.mark.airflow
def test_the_nightly_operator_launches_spark_submit_through_the_guard(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[1]"}')
    from percolate.spark_operator import GuardedSparkSubmitHook, GuardedSparkSubmitOperator

    op = GuardedSparkSubmitOperator(task_id="t", conn_id="spark_default", application="job.py",
                                    application_args=["--date", "2026-01-01"])
    hook = op._get_hook()
    assert isinstance(hook, GuardedSparkSubmitHook)
    cmd = hook._build_spark_submit_command("job.py")
    assert cmd[:4] == [sys.executable, "-m", "percolate.orphan_guard", "--grace-s"]
    assert cmd[5:9] == ["--", "spark-submit", "--master", "local[1]"]
    assert cmd[-3:] == ["job.py", "--date", "2026-01-01"]


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_spark_submit_stops_when_its_task_process_is_killed(tmp_path):
    """spark-submit on local[1] running a PySpark app that sleeps: the JVM and the app's
    Python process are gone within seconds of the task process's SIGKILL."""
    pid_file, app = tmp_path / "pid", tmp_path / "app.py"
    app.write_text("import os, sys, time\nfrom pyspark.sql import SparkSession\n"
                   "spark = SparkSession.builder.getOrCreate()\n"
                   f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)\n")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1")
    submit = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
              "--conf", "spark.ui.enabled=false", str(app)]
    task = subprocess.Popen([sys.executable, "-c", TASK, *GUARD, *submit], env=env)
    try:
        _wait_for(pid_file, 120)
        tree = _tree(task.pid)[1:]
        assert any("java" in p.name() for p in tree) and int(pid_file.read_text()) in {p.pid for p in tree}
        os.kill(task.pid, signal.SIGKILL)
        task.wait()
        assert _gone_within(tree, 15) == []
    finally:
        if task.poll() is None:
            task.kill()
