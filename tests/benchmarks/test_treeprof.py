"""benchmarks.cost.treeprof: a command's CPU by job and process kind."""

from __future__ import annotations

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
