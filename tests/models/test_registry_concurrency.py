"""Concurrent writers of one registry, as real processes: registrations never share a version
number, alias moves never lose one (nor their history lines)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.registry import ModelRegistry
from percolate.io.store import LocalStore, open_store

ROOT = Path(__file__).resolve().parents[2]
WORKERS, EACH = 4, 5

# One writer: waits for the common start, then stores EACH versions (the registry's storage
# step: the smoke test is not what races) and moves EACH aliases of its own. No torch import.
WORKER = """
import json, sys, time
from models.registry import ModelRegistry
from percolate.io.store import open_store
uri, endpoint, name, start = sys.argv[1], sys.argv[2] or None, sys.argv[3], float(sys.argv[4])
registry = ModelRegistry(open_store(uri, endpoint))
while time.time() < start:
    time.sleep(0.001)
versions = [registry._store("heavy", {"arch": "torchscript", "by": f"{name}-{i}"}, {"model.pt": name.encode()})
            for i in range(%d)]
for i in range(%d):
    registry.set_alias("prefilter", f"{name}-{i}", "v0001", reason=name)
print(json.dumps(versions))
""" % (EACH, EACH)


def run_writers(uri: str, endpoint: str = "") -> list[list[str]]:
    start = time.time() + 5  # every worker has imported by then (2 loaded cores)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, uri, endpoint, f"w{k}", str(start)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(WORKERS)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(json.loads(out))
    return outs


def check(registry: ModelRegistry, outs: list[list[str]]) -> None:
    claimed = [v for out in outs for v in out]
    assert len(set(claimed)) == len(claimed) == WORKERS * EACH
    assert registry.versions("heavy") == sorted(claimed, key=lambda v: int(v[1:]))
    for k, out in enumerate(outs):  # each version holds what its writer stored
        assert [registry.spec("heavy", v)["by"] for v in out] == [f"w{k}-{i}" for i in range(EACH)]
    want = {f"w{k}-{i}" for k in range(WORKERS) for i in range(EACH)}
    assert set(registry.aliases()["prefilter"]) == want
    assert sorted(m["alias"] for m in registry.alias_history("prefilter")) == sorted(want)


def _prepare(registry: ModelRegistry) -> None:
    registry._store("prefilter", {"arch": "torchscript"}, {"model.pt": b"p"})


def test_concurrent_registrations_and_alias_moves_on_a_local_store(tmp_path):
    registry = ModelRegistry(LocalStore(tmp_path / "store"))
    _prepare(registry)
    check(registry, run_writers(str(tmp_path / "store")))


@pytest.mark.integration
def test_concurrent_registrations_and_alias_moves_on_s3(s3_endpoint):
    """Conditional PUTs (If-None-Match / If-Match) on the loopback S3 server."""
    store = open_store("s3://percolate-registry/prefix", endpoint_url=s3_endpoint)
    store.client.create_bucket(Bucket="percolate-registry")
    registry = ModelRegistry(store)
    _prepare(registry)
    check(registry, run_writers("s3://percolate-registry/prefix", s3_endpoint))
