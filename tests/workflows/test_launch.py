"""Stopping services: the whole process group, and only once it has really exited."""

import subprocess
import sys
import time

from workflows.launch import group_alive, stop_groups


def started(tmp_path, name: str, code: str) -> tuple[subprocess.Popen, object]:
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    pid_file = tmp_path / f"{name}.pid"
    pid_file.write_text(str(proc.pid))
    return proc, pid_file


def test_stop_waits_until_the_groups_have_exited(tmp_path):
    # a service with a child of its own (like spark-submit's JVM), and one that takes a while to stop
    proc_a, pid_a = started(tmp_path, "a", "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)")
    proc_b, pid_b = started(tmp_path, "b", "import signal, sys, time\n"
                                           "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1), sys.exit(0)))\n"
                                           "time.sleep(60)")
    time.sleep(0.5)
    t = time.monotonic()
    stop_groups([pid_a, pid_b, tmp_path / "never-started.pid"])
    assert time.monotonic() - t >= 0.9  # waited for b's shutdown
    assert not group_alive(proc_a.pid) and not group_alive(proc_b.pid)
    assert not pid_a.exists() and not pid_b.exists()
    proc_a.wait(5), proc_b.wait(5)


def test_a_group_that_ignores_sigterm_is_killed_after_the_wait(tmp_path):
    proc, pid_file = started(tmp_path, "stubborn", "import signal, time\n"
                                                     "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                                     "time.sleep(60)")
    time.sleep(0.5)
    stop_groups([pid_file], wait_s=1)
    assert proc.wait(5) == -9 and not group_alive(proc.pid)


def test_a_failed_run_says_why_in_one_line():
    from workflows.launch import failure_reason

    log = ("2026-12-03T15:38:24Z [error    ] Task failed with exception     [task] loc=task_runner.py:1676\n"
           "Traceback (most recent call last):\n"
           '  File "/x/percolate/io/manifest.py", line 79, in read_manifest\n'
           "    raise ManifestError(f\"manifest {key} lacks columns {missing}\")\n"
           "percolate.io.manifest.ManifestError: manifest manifests/dt=2026-11-03/manifest.csv lacks columns "
           "['call_id']\n"
           "2026-12-03T15:38:32Z [info     ] Marking run <DagRun percolate_nightly> failed\n")
    assert failure_reason(log) == ("ManifestError: manifest manifests/dt=2026-11-03/manifest.csv lacks columns "
                                   "['call_id']")
    assert failure_reason("2026-12-03 [info] all fine\n") is None
