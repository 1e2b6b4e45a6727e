"""A Spark task's Python worker killed mid-decode (first attempt only): the task is retried
(the default master, `local[*,4]`, retries a failed task as a cluster does) and the sampled
rows equal a clean run's, by an order-independent checksum.

Run in a fresh interpreter: the test session's shared SparkSession has no task retries, and
one process holds one SparkContext.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import hashlib, json, os, signal, sys, threading, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from media import make_video
from percolate.core.layout import video_key
from percolate.core.settings import Settings
from percolate.io.spark import get_spark
from percolate.io.store import LocalStore
from percolate.transforms.sampling import frames_of, manifest_frame, outcomes_of, sample_videos
from percolate.video.limits import DecodeLimits

work = sys.argv[2]
store = LocalStore(work + "/store")
rows = []
for i in range(4):
    key = video_key("2026-01-03", f"c{i}")
    store.put_file(key, make_video(f"{work}/c{i}.mp4", n=900, w=320, h=180, gop=30))  # 30 s each
    rows.append({"call_id": f"c{i}", "user_id": "u", "video_key": key, "size_bytes": 1})
from pathlib import Path
settings = Settings(home=Path(work) / "home", store_uri=store.uri, database="percolate_killed")
spark = get_spark("percolate-worker-killed", settings, master=settings.spark_master)

def checksum():
    sampled = sample_videos(manifest_frame(spark, rows), store_uri=store.uri, endpoint_url=None, fps=10.0,
                            max_side=320, jpeg_quality=80, limits=DecodeLimits())
    frames = frames_of(sampled).collect()
    outcomes = outcomes_of(sampled).collect()
    digest = 0
    for f in frames:
        digest ^= int(hashlib.sha256(f"{f.call_id}/{f.frame_index}/{f.ts_ms}".encode() + f.jpeg).hexdigest()[:16], 16)
    return {"frames": len(frames), "digest": digest, "outcomes": sorted((o.call_id, o.status) for o in outcomes)}

def children(pid):
    """Children of every thread of `pid` (a JVM starts processes from many threads)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(p) for p in fh.read().split()]
        except OSError:  # a thread that ended meanwhile
            continue
    return found

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""

def descendants(pid):
    for child in children(pid):
        yield pid, child
        yield from descendants(child)

killed = []
def kill_a_worker():
    """SIGKILL the first Python worker seen with a decode child (pyspark.daemon forks a
    worker per task; a worker forks one child per video)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        for parent, pid in descendants(os.getpid()):
            if b"pyspark.daemon" in cmdline(parent) and b"pyspark.daemon" in cmdline(pid) and children(pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.005)

clean = checksum()
killer = threading.Thread(target=kill_a_worker)
killer.start()
faulted = checksum()
killer.join()
print(json.dumps({"clean": clean, "faulted": faulted, "killed": killed, "master": settings.spark_master}))
spark.stop()
'''


def test_a_killed_python_worker_is_retried_and_changes_nothing(tmp_path):
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO), str(tmp_path)], capture_output=True, text=True,
                         timeout=480, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["master"] == "local[*,4]"
    assert out["killed"], "no Python worker was seen decoding"
    assert out["clean"]["frames"] == 4 * 300
    assert out["faulted"] == out["clean"]
    assert "Python worker exited unexpectedly" in run.stderr or "crashed" in run.stderr.lower() \
        or "Lost task" in run.stderr, run.stderr[-3000:]
