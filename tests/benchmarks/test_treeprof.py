"""benchmarks.cost.treeprof: a command's CPU by job and process kind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.cost.treeprof import profile

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end:\n    pass\n"


def test_a_job_driver_is_found_by_its_script_and_its_cpu_counted():
    # argv names jobs/fake_job.py, as a Spark job's Python driver's does
    result = profile([sys.executable, "-c", BURN, "jobs/fake_job.py"], interval_s=0.02)
    assert result["rc"] == 0
    rows = {(r["job"], r["kind"]): r for r in result["rows"]}
    assert ("fake_job", "pydriver") in rows, rows
    assert 0.3 <= rows[("fake_job", "pydriver")]["own"] <= 2.0


def test_a_plain_command_is_outside_the_jobs():
    result = profile([sys.executable, "-c", BURN], interval_s=0.02)
    assert [(r["job"], r["kind"]) for r in result["rows"]] == [("outside", "other")]


def test_processes_forked_by_a_python_worker_are_left_to_its_children_column():
    # argv names pyspark.daemon, as PySpark's daemon and its forked workers' do: the first
    # process is the daemon, its child a worker, the worker's child a decode child (skipped:
    # its CPU reaches the worker's `children` when the worker reaps it)
    script = ("import os, time\n"
              "if os.fork() == 0:\n"
              "    if os.fork() == 0:\n"
              f"        exec({BURN!r})\n"
              "        os._exit(0)\n"
              "    os.wait(); time.sleep(0.2); os._exit(0)\n"
              "os.wait()\n")
    result = profile([sys.executable, "-c", script, "pyspark.daemon"], interval_s=0.02)
    assert result["rc"] == 0
    rows = {(r["job"], r["kind"]): r for r in result["rows"]}
    assert set(rows) == {("outside", "pydaemon"), ("outside", "pyworker")}, rows
    assert rows[("outside", "pyworker")]["processes"] == 1
    assert rows[("outside", "pyworker")]["children"] >= 0.3


def test_only_the_commands_tree_is_profiled():
    # another child of the caller (a test session's Spark JVM, a server) is not the command's
    other = subprocess.Popen([sys.executable, "-c", BURN + "time.sleep(5)\n", "jobs/other_job.py"])
    try:
        result = profile([sys.executable, "-c", BURN], interval_s=0.02)
    finally:
        other.kill()
        other.wait()
    assert [(r["job"], r["kind"]) for r in result["rows"]] == [("outside", "other")]
