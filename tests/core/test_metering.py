"""percolate.core.metering: a job's CPU includes the Python workers that exited before it
measured itself (PySpark's daemon ignores SIGCHLD: their CPU reaches no cutime)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from percolate.core import metering

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A stand-in for PySpark's daemon: ignores SIGCHLD, forks a "worker" that burns ~0.6 CPU-s
# and exits (the kernel reaps it), then idles until told to go.
DAEMON = """
import os, signal, sys, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
if os.fork() == 0:
    end = time.process_time() + 0.6
    while time.process_time() < end:
        pass
    os._exit(0)
sys.stdin.readline()
"""


def _run_daemon(metered: bool) -> float:
    """CPU seconds of the stand-in daemon's tree once its worker has exited: a plain tree walk,
    or with a `JobMeter` rooted at the daemon polling meanwhile (only that tree: whatever else
    the test session runs does not count)."""
    proc = subprocess.Popen([sys.executable, "-c", DAEMON], stdin=subprocess.PIPE, text=True)
    meter = metering.JobMeter(proc.pid, interval_s=0.02) if metered else None
    try:
        seen, deadline = False, time.monotonic() + 60
        while time.monotonic() < deadline:  # the worker appears, works and exits; the meter polls
            if meter is not None:
                meter.poll()
            working = bool(metering._children(proc.pid))
            if seen and not working:
                break
            seen = seen or working
            time.sleep(0.02)
        assert seen, "the stand-in daemon never forked its worker"
        own = metering.tree_cpu_seconds(proc.pid)
        return own + (meter.vanished_cpu_seconds() if meter is not None else 0.0)
    finally:
        proc.communicate("go\n", timeout=30)


def test_the_meter_counts_workers_that_exited():
    without, with_meter = _run_daemon(False), _run_daemon(True)
    # the exited worker's ~0.6 CPU-s are lost to a plain tree walk, found by the meter
    assert without < 0.4 < with_meter, (without, with_meter)


def test_start_job_meter_runs_once_and_job_cpu_seconds_uses_it(monkeypatch):
    monkeypatch.setattr(metering, "_METER", None)
    first = metering.start_job_meter(interval_s=0.05)
    try:
        assert first is not None and first.is_alive()
        assert metering.start_job_meter() is first
        assert metering.job_cpu_seconds() >= metering.tree_cpu_seconds(metering.os.getpid()) - 0.05
    finally:
        first.stop()


def test_a_stopped_meter_ends_and_can_be_joined():
    meter = metering.JobMeter(metering.os.getpid(), interval_s=0.01)
    meter.start()
    meter.stop()
    meter.join(timeout=5)
    assert not meter.is_alive()
