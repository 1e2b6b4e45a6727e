"""CPU seconds of a command's whole process tree, JVMs and Python workers included.

`run_metered` starts a launcher process (this module's `main`) that makes itself the
child subreaper (Linux prctl PR_SET_CHILD_SUBREAPER), starts the command and reaps every
descendant until none is left: orphans (a daemon whose parent died) are re-parented to it,
so every process of the tree is waited for by someone, and the launcher's RUSAGE_CHILDREN
holds their CPU. Except the children of a process that ignores SIGCHLD (PySpark's daemon
and its Python workers, which run the models): the kernel reaps them and their CPU reaches
no RUSAGE_CHILDREN, so it is sampled from /proc every 0.2 s and added, unless the launcher
reaped it after all: a worker whose daemon died first (the JVM stops the daemon at shutdown, and
whether each worker is gone by then is a race) is re-parented to the launcher, whose
RUSAGE_CHILDREN then holds its CPU; adding its samples too counted it twice (up to 60 CPU-s of a
benchmark day's run, in some runs and not others, until 2026-12-06). Peak memory: the sum of the tree's resident sets, sampled
every 0.5 s (pages shared between forked workers count once per process: an upper bound).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from percolate.core.metering import ignores_sigchld

PR_SET_CHILD_SUBREAPER = 36
LINGER_S = 60.0  # how long descendants may outlive the command before they are stopped


def run_metered(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> dict:
    """Run `cmd` under the launcher; {"cpu_s", "wall_s", "peak_rss_mb", "rc", "log"}."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = log_path.with_suffix(".meter.json")
    out.unlink(missing_ok=True)
    launcher = [sys.executable, "-m", "benchmarks.cost.meter", str(out), "--", *cmd]
    env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]),
                                                            env.get("PYTHONPATH", "")) if p))
    with log_path.open("w") as log:
        rc = subprocess.run(launcher, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT).returncode
    if not out.exists():
        raise RuntimeError(f"the meter failed (exit {rc}); log {log_path}")
    return dict(json.loads(out.read_text()), log=str(log_path))


class _Sampler(threading.Thread):
    """Every 0.2 s: the tree's resident memory, and the CPU so far of every process whose
    parent ignores SIGCHLD (their CPU never reaches RUSAGE_CHILDREN: it is counted from these
    samples, so each loses at most its last 0.2 s)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.stop = 0, threading.Event()
        self.unreaped: dict[tuple[int, float], float] = {}

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.wait(0.2):
            total, ignoring = 0, {}
            for p in me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                    ppid = p.ppid()
                    if ignoring.setdefault(ppid, ignores_sigchld(ppid)):
                        t = p.cpu_times()
                        self.unreaped[(p.pid, p.create_time())] = t.user + t.system + t.children_user + \
                            t.children_system
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)


def _reap_all(main_pid: int, reaped: set[int]) -> int:
    """Wait for the command, then for every other descendant; the command's exit status.
    Adds the pid of every process it reaped to `reaped`."""
    import psutil

    rc, main_done_at = None, None
    while True:
        try:
            pid, status, _ = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return rc if rc is not None else 1
        if pid:
            reaped.add(pid)
        if pid == 0:
            if main_done_at is not None and time.monotonic() - main_done_at > LINGER_S:
                for p in psutil.Process().children(recursive=True):  # our own descendants only
                    p.send_signal(signal.SIGTERM)
                main_done_at = float("inf")
            time.sleep(0.05)
            continue
        if pid == main_pid:
            rc, main_done_at = os.waitstatus_to_exitcode(status), time.monotonic()


def main(argv: list[str]) -> int:
    out, cmd = Path(argv[0]), argv[argv.index("--") + 1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    sampler = _Sampler()
    sampler.start()
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    reaped: set[int] = set()
    rc = _reap_all(proc.pid, reaped)
    wall = time.monotonic() - start
    sampler.stop.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = usage.ru_utime + usage.ru_stime
    # a sampled process that the launcher reaped itself (orphaned) is in `waited` already
    unreaped = {key: cpu for key, cpu in sampler.unreaped.items() if key[0] not in reaped}
    orphaned = sum(cpu for key, cpu in sampler.unreaped.items() if key[0] in reaped)
    out.write_text(json.dumps({"rc": rc, "cpu_s": round(waited + sum(unreaped.values()), 2),
                               "waited_cpu_s": round(waited, 2), "unreaped_cpu_s": round(sum(unreaped.values()), 2),
                               "unreaped_processes": len(unreaped), "reaped_after_orphaning_cpu_s": round(orphaned, 2),
                               "user_s": round(usage.ru_utime, 2), "sys_s": round(usage.ru_stime, 2),
                               "wall_s": round(wall, 2), "peak_rss_mb": round(sampler.peak / 2**20, 1),
                               "max_single_rss_mb": round(usage.ru_maxrss / 1024, 1)}))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
