"""CPU seconds of a command's process tree by Spark job and process kind.

    python -m benchmarks.cost.treeprof [--json OUT] -- COMMAND...

Polls the tree every 0.1 s (psutil) and keeps, for every process it saw, its own CPU and its
reaped children's at the last sighting. A process belongs to the job named by the nearest
`jobs/<name>.py` on its command line or an ancestor's ("outside" otherwise: Airflow, the CLI),
and is one of: `jvm` (a driver JVM, with the spark-submit launcher it replaced), `pydriver`
(the job's Python driver, and the orphan guard in front of spark-submit), `pydaemon`
(PySpark's daemon), `pyworker` (a Python worker: its `children` column holds the decode
children it forked and reaped), `airflow`, or `other`.

A job's CPU is `own` over all its rows plus `children` of its `pyworker` rows. A `jvm` row's
`children` repeat the spark-submit launcher (listed on its own too) and add the short-lived
commands the JVM ran (chmod, rm) that a poll may have missed: compare days by differences. The processes forked by a Python worker (the sampler's decode children) are not listed:
their CPU is the worker's `children`. Each process loses at most its last 0.1 s.
Used for the profile in docs/cost.md ("Where the CPU goes"); `benchmarks/cost/meter.py`
stays the benchmark's total.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time

JOB = re.compile(r"jobs/(\w+)\.py")


def _cmd(p) -> list[str]:
    import psutil

    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _kind(p, cmd: list[str]) -> str:
    import psutil

    text = " ".join(cmd)
    if not cmd:
        return "other"
    if "java" in cmd[0].rsplit("/", 1)[-1] or (JOB.search(text) and "python" not in cmd[0]):
        return "jvm"  # spark-submit's bash becomes the driver JVM (exec), same process
    if "pyspark.daemon" in text:
        try:
            parent = " ".join(p.parent().cmdline())
        except (psutil.Error, AttributeError):
            parent = ""
        return "pyworker" if "pyspark.daemon" in parent else "pydaemon"
    if JOB.search(text):
        return "pydriver"
    if "airflow" in text:
        return "airflow"
    return "other"


def _tree(root) -> list:
    """`root` and its live descendants (none once it is gone)."""
    import psutil

    try:
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def _poll(root, seen: dict, proc, interval_s: float) -> None:
    """Until `proc` ends: `root` (its process) and every process under it, with its job, kind
    and CPU at the last sighting. Not the caller's other children: only the command's tree."""
    import psutil

    while True:
        done = proc.poll() is not None
        for p in _tree(root):
            try:
                key = (p.pid, p.create_time())
                row = seen.get(key)
                if row is not None and row.get("skip"):
                    continue
                cmdline = _cmd(p)
                if row is None or row["kind"] == "other" and cmdline:
                    ancestry = [cmdline] + [_cmd(q) for q in p.parents()]
                    if len(ancestry) > 2 and all("pyspark.daemon" in " ".join(c) for c in ancestry[1:3]):
                        seen[key] = {"skip": True}  # forked by a worker (parent and grandparent are PySpark's)
                        continue
                    job = next((m.group(1) for c in ancestry if (m := JOB.search(" ".join(c)))), "outside")
                    row = seen[key] = {"job": job, "kind": _kind(p, cmdline)}
                elif row["kind"] != "jvm" and cmdline and "java" in cmdline[0].rsplit("/", 1)[-1]:
                    row["kind"] = "jvm"
                t = p.cpu_times()
                row["own"], row["children"] = t.user + t.system, t.children_user + t.children_system
            except psutil.Error:
                pass
        if done:
            break
        time.sleep(interval_s)


def profile(cmd: list[str], interval_s: float = 0.1) -> dict:
    """Run `cmd`; {"rc", "wall_s", "rows": [{"job", "kind", "processes", "own", "children"}]}."""
    import psutil

    seen: dict[tuple[int, float], dict] = {}
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    try:
        _poll(psutil.Process(proc.pid), seen, proc, interval_s)
    except BaseException:
        proc.kill()  # leave no run behind
        raise
    rows: dict[tuple[str, str], dict] = {}
    for row in seen.values():
        if row.get("skip") or "own" not in row:
            continue
        agg = rows.setdefault((row["job"], row["kind"]), {"job": row["job"], "kind": row["kind"], "processes": 0,
                                                          "own": 0.0, "children": 0.0})
        agg["processes"] += 1
        agg["own"] += row["own"]
        agg["children"] += row["children"]
    out = [dict(r, own=round(r["own"], 2), children=round(r["children"], 2)) for _, r in sorted(rows.items())]
    return {"rc": proc.returncode, "wall_s": round(time.monotonic() - start, 2), "rows": out}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    cut = argv.index("--")
    parser = argparse.ArgumentParser(description="CPU of a command's process tree by job and process kind.")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv[:cut])
    result = profile(argv[cut + 1:])
    print(f"{'job':16s} {'kind':9s} {'procs':>5s} {'own CPU-s':>10s} {'children':>9s}")
    for r in result["rows"]:
        print(f"{r['job']:16s} {r['kind']:9s} {r['processes']:5d} {r['own']:10.2f} {r['children']:9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result["rc"]


if __name__ == "__main__":
    sys.exit(main())
