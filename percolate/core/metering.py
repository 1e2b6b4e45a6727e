"""CPU time of a Spark job, for the cost figures in `pipeline_runs`.

In local mode the driver JVM runs the executors and forks the Python workers, so the CPU
time of the JVM's process tree is the job's whole cost. Reaped children are counted through
their parent's cutime/cstime, live ones through their own entries.
"""

from __future__ import annotations

import os
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


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and all its live descendants (and reaped ones)."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = _stat(pid)
        if fields is None:
            continue
        total += _cpu_ticks(fields)
        stack += _children(pid)
    return total / _TICKS


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def job_cpu_seconds() -> float | None:
    """CPU seconds of this Spark job so far, or None where /proc is not available.

    Under spark-submit the Python driver is a child of the JVM: measure the JVM's tree.
    Started from plain Python (tests), the JVM is our child: measure our own tree.
    """
    if not Path("/proc/self/stat").exists():
        return None
    parent = os.getppid()
    root = parent if "java" in _cmdline(parent) else os.getpid()
    return round(tree_cpu_seconds(root), 3)
