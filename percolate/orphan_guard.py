"""Run a command that must not outlive the process that launched it.

An Airflow task runs `spark-submit` as a child process. When the task process dies (killed
by the supervisor at its timeout, by the OOM killer, with its worker), nothing stops that
child: its JVM, Python driver and Python workers go on beside the task's retry, writing the
same date. The nightly DAG therefore launches every Spark job through this guard
(`percolate.spark_operator`):

    python -m percolate.orphan_guard [--grace-s S] -- spark-submit ARGS...

The guard starts the command in a session (process group) of its own, then stops the
command's whole process tree (SIGTERM, SIGKILL after `--grace-s`) as soon as
- its own parent dies: the kernel sends it SIGTERM (`prctl(PR_SET_PDEATHSIG)`, Linux), and a
  watchdog sees its parent pid change within `POLL_S` (any system, and the moment between the
  fork and the `prctl`);
- it gets SIGTERM, SIGINT or SIGHUP (the operator's `on_kill`).
The tree is walked with psutil at that moment, so processes that left the group (PySpark's
worker daemon calls `setpgid`) are stopped too. The command itself also gets
`PR_SET_PDEATHSIG(SIGTERM)`: if the guard is SIGKILLed, the JVM still shuts down (and with it
the Python workers, which exit when the JVM's pipes close).

Exit status: the command's, or 143 when the guard stopped it. Where the driver runs on a
cluster (`--deploy-mode cluster`), stopping spark-submit does not stop the driver: the operator's
`on_kill` (YARN, Kubernetes, standalone) does, when the task is killed gracefully.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_S = 0.2
STOPPED = 128 + signal.SIGTERM


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send `sig` to this process when its parent exits; False where the
    system has no `prctl` (the watchdog still notices, within `POLL_S`)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def stop_tree(pid: int, grace_s: float) -> None:
    """SIGTERM `pid`, its process group and every descendant; SIGKILL what is left after
    `grace_s`."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)  # the group: children forked while we walk the tree
        except (ProcessLookupError, PermissionError):
            pass
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, procs = psutil.wait_procs(procs, timeout=grace_s if sig == signal.SIGTERM else 5)
        if not procs:
            return


def run_guarded(cmd: list[str], grace_s: float = 10.0) -> int:
    """Run `cmd` until it exits (its status) or the guard's parent dies or the guard is told
    to stop (then stop `cmd`'s tree and return 143)."""
    parent = os.getppid()
    asked: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: asked.append(signum))
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the prctl took effect
        return STOPPED
    child = subprocess.Popen(cmd, start_new_session=True, preexec_fn=die_with_parent)
    while True:
        try:
            return child.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if asked or os.getppid() != parent:
            why = f"signal {asked[0]}" if asked else f"its parent {parent} died"
            print(f"orphan_guard: stopping {cmd[0]} (pid {child.pid}) and its processes: {why}",
                  file=sys.stderr, flush=True)
            stop_tree(child.pid, grace_s)
            child.wait()
            return STOPPED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m percolate.orphan_guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--grace-s", type=float, default=10.0, help="SIGTERM to SIGKILL (default 10 s)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given")
    return run_guarded(cmd, args.grace_s)


if __name__ == "__main__":
    sys.exit(main())
