"""The object store: local directory and S3 (a real S3-compatible server on loopback)."""

from __future__ import annotations

import socket

import pytest

from percolate.io.store import LocalStore, open_store


def exercise(store) -> None:
    store.put_bytes("videos/dt=2026-01-01/a.mp4", b"one")
    store.put_bytes("videos/dt=2026-01-01/b.mp4", b"two")
    store.put_bytes("videos/dt=2026-01-02/c.mp4", b"three")
    assert store.get_bytes("videos/dt=2026-01-01/a.mp4") == b"one"
    assert store.exists("videos/dt=2026-01-01/b.mp4")
    assert not store.exists("videos/dt=2026-01-01/zzz.mp4")
    assert store.list("videos/dt=2026-01-01/") == ["videos/dt=2026-01-01/a.mp4", "videos/dt=2026-01-01/b.mp4"]
    with store.local_copy("videos/dt=2026-01-02/c.mp4") as path:
        assert open(path, "rb").read() == b"three"
    assert store.list("videos/") == ["videos/dt=2026-01-01/a.mp4", "videos/dt=2026-01-01/b.mp4",
                                     "videos/dt=2026-01-02/c.mp4"]


def test_local_store_round_trip(tmp_path):
    exercise(LocalStore(tmp_path))


def test_local_store_refuses_escaping_keys(tmp_path):
    store = LocalStore(tmp_path)
    for key in ("../etc/passwd", "a/../../b", "", "/"):
        with pytest.raises(ValueError):
            store.put_bytes(key, b"x")


def test_open_store_rejects_unknown_schemes():
    with pytest.raises(ValueError, match="unsupported"):
        open_store("ftp://example/x")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_s3_store_round_trip(monkeypatch):
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        for var, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(var, value)
        endpoint = f"http://127.0.0.1:{port}"
        store = open_store("s3://percolate-test/prefix", endpoint_url=endpoint)
        store.client.create_bucket(Bucket="percolate-test")
        exercise(store)
        # the prefix is respected: the object lies under it in the bucket
        keys = [o["Key"] for o in store.client.list_objects_v2(Bucket="percolate-test")["Contents"]]
        assert keys == ["prefix/videos/dt=2026-01-01/a.mp4", "prefix/videos/dt=2026-01-01/b.mp4",
                            "prefix/videos/dt=2026-01-02/c.mp4"]
    finally:
        server.stop()
