"""Ingest is idempotent per content and safe against a concurrent ingest of the same date."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from percolate.io.manifest import read_manifest, write_manifest
from percolate.io.store import LocalStore
from workflows.ingest import IngestError, ingest

DATE = "2026-02-03"

# one process: wait for the start file, then ingest its files one by one (one manifest update each)
WORKER = """
import sys, time
from pathlib import Path
from percolate.io.store import LocalStore
from workflows.ingest import ingest
store, go, files = LocalStore(sys.argv[1]), Path(sys.argv[2]), [Path(f) for f in sys.argv[3:]]
while not go.exists():
    time.sleep(0.005)
for f in files:
    ingest(store, "%s", [f], {f.name: "user-" + f.parent.name})
""" % DATE


def test_reingesting_a_file_keeps_its_call_id_and_adds_no_row(tmp_path):
    store = LocalStore(tmp_path / "store")
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"video a")
    b.write_bytes(b"video b")
    first = ingest(store, DATE, [a, b], {"a.mp4": "u1", "b.mp4": "u2"})
    assert [(r["call_id"], r["new"]) for r in first["ingested"]] == [("a", True), ("b", True)]
    renamed = tmp_path / "copy of a.mp4"  # the same content under another name: the same call
    renamed.write_bytes(b"video a")
    again = ingest(store, DATE, [a, renamed], {"a.mp4": "u1", "copy of a.mp4": "u1"})
    assert [(r["call_id"], r["new"]) for r in again["ingested"]] == [("a", False), ("a", False)]
    assert [r["call_id"] for r in read_manifest(store, DATE)] == ["a", "b"]
    other = tmp_path / "sub" / "a.mp4"  # another content under a taken name: a new call
    other.parent.mkdir()
    other.write_bytes(b"another video")
    assert ingest(store, DATE, [other], {str(other): "u3"})["ingested"][0]["call_id"] == "a-2"
    assert store.get_bytes("videos/dt=2026-02-03/a.mp4") == b"video a"
    with pytest.raises(IngestError, match="already recorded .* as call a of user u1, not u9"):
        ingest(store, DATE, [a], {"a.mp4": "u9"})
    assert len(read_manifest(store, DATE)) == 3


def test_a_video_left_by_an_ingest_that_died_is_reused(tmp_path):
    store = LocalStore(tmp_path / "store")
    f = tmp_path / "x.mp4"
    f.write_bytes(b"x video")
    store.put_file("videos/dt=2026-02-03/x.mp4", f)  # copied, manifest never updated
    write_manifest(store, DATE, [{"call_id": "gone", "user_id": "u", "video_key": "videos/dt=2026-02-03/gone.mp4",
                                  "size_bytes": f.stat().st_size}])  # a row of the same size, no object
    assert ingest(store, DATE, [f], {"x.mp4": "u"})["ingested"][0]["call_id"] == "x"
    assert [r["call_id"] for r in read_manifest(store, DATE)] == ["gone", "x"]


@pytest.mark.slow
def test_two_concurrent_ingests_of_one_date_record_every_file_once(tmp_path):
    """Two processes, 8 ingests each, started together; half the file names are the same in
    both (different content): every file is recorded exactly once, each object intact."""
    store_dir, go = tmp_path / "store", tmp_path / "go"
    batches = []
    for who in ("p", "q"):
        folder = tmp_path / who
        folder.mkdir()
        names = [f"{who}{i}.mp4" for i in range(4)] + [f"shared{i}.mp4" for i in range(4)]
        for name in names:
            (folder / name).write_bytes(f"{who}/{name}".encode() * 100)
        batches.append([str(folder / n) for n in names])
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(store_dir), str(go), *files],
                              stderr=subprocess.PIPE, text=True) for files in batches]
    time.sleep(2)  # both imported and waiting
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    store = LocalStore(store_dir)
    rows = read_manifest(store, DATE)
    assert len(rows) == 16
    contents = sorted(store.get_bytes(r["video_key"]) for r in rows)
    assert contents == sorted(Path(f).read_bytes() for files in batches for f in files)
    assert all(store.get_bytes(r["video_key"]).startswith(r["user_id"].removeprefix("user-").encode())
               for r in rows)
