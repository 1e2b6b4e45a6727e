"""CPU time of a Spark job, for the cost figures in `pipeline_runs`.

In local mode the driver JVM runs the executors and forks the Python workers, so the CPU
time of the JVM's process tree is the job's whole cost. Reaped children are counted through
their parent's cutime/cstime, live ones through their own entries.

Except the Python workers that exit before the job measures itself: PySpark's daemon ignores
SIGCHLD, so the kernel reaps its workers and their CPU (with that of the decode children they
reaped) reaches nobody's cutime. A job that starts `JobMeter` (`jobs.common.Stopwatch` does)
polls its tree every second and adds the last CPU it saw of every such process that is gone
(a worker Spark replaces mid-job; where workers live to the end of the job it adds nothing).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces; fields after the closing parenthesis are fixed.
    return raw[raw.rindex(")") + 2:].split()


def _cpu_ticks(fields: list[str]) -> int:
    # after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for tid in task_dir.iterdir():
            text = (tid / "children").read_text().split()
            kids += [int(k) for k in text]
    except OSError:
        pass
    return kids


def _tree(root: int) -> dict[tuple[int, str], tuple[int, int]]:
    """(pid, start time) -> (CPU ticks with reaped children, parent pid) of `root` and its
    live descendants."""
    out, stack = {}, [root]
    while stack:
        pid = stack.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        key = (pid, fields[19])  # starttime: a recycled pid is another process
        if key in out:
            continue
        out[key] = (_cpu_ticks(fields), int(fields[1]))
        stack += _children(pid)
    return out


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and all its live descendants (and reaped ones)."""
    return sum(ticks for ticks, _ in _tree(root).values()) / _TICKS


def ignores_sigchld(pid: int) -> bool:
    """Whether `pid` ignores SIGCHLD: the kernel then reaps its children, and their CPU is added
    to nobody's cutime (PySpark's daemon does this to its Python workers)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGCHLD - 1)))
    except (OSError, ValueError):
        pass
    return False


class JobMeter(threading.Thread):
    """Polls `root`'s process tree every `interval_s` and remembers the CPU of the processes
    whose parent ignores SIGCHLD; `vanished_cpu_seconds()` is what those of them that are gone
    had used when last seen (each loses at most its last `interval_s`)."""

    def __init__(self, root: int, interval_s: float = 1.0) -> None:
        super().__init__(name="percolate-job-meter", daemon=True)
        self.root, self.interval_s = root, interval_s
        self._seen: dict[tuple[int, str], int] = {}
        self._ignoring: dict[int, bool] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()  # not _stop: threading.Thread has its own

    def poll(self) -> dict[tuple[int, str], tuple[int, int]]:
        tree = _tree(self.root)
        with self._lock:
            for key, (ticks, ppid) in tree.items():
                if key[0] != self.root and self._ignoring.setdefault(ppid, ignores_sigchld(ppid)):
                    self._seen[key] = max(ticks, self._seen.get(key, 0))
        return tree

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.poll()

    def vanished_cpu_seconds(self) -> float:
        live = self.poll()
        with self._lock:
            return sum(t for key, t in self._seen.items() if key not in live) / _TICKS

    def stop(self) -> None:
        self._halt.set()


_METER: JobMeter | None = None


def _job_root() -> int:
    parent = os.getppid()
    return parent if "java" in _cmdline(parent) else os.getpid()


def start_job_meter(interval_s: float = 1.0) -> JobMeter | None:
    """Start this process's `JobMeter` (once; None where /proc is not available)."""
    global _METER
    if _METER is None and Path("/proc/self/stat").exists():
        _METER = JobMeter(_job_root(), interval_s)
        _METER.start()
    return _METER


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def job_cpu_seconds() -> float | None:
    """CPU seconds of this Spark job so far, or None where /proc is not available.

    Under spark-submit the Python driver is a child of the JVM: measure the JVM's tree.
    Started from plain Python (tests), the JVM is our child: measure our own tree. With
    `start_job_meter` running, the Python workers that exited meanwhile count too.
    """
    if not Path("/proc/self/stat").exists():
        return None
    vanished = _METER.vanished_cpu_seconds() if _METER is not None else 0.0
    return round(tree_cpu_seconds(_job_root()) + vanished, 3)
