"""The object store: local directory and S3 (a real S3-compatible server on loopback)."""

from __future__ import annotations

import socket

import pytest

from percolate.io.store import BadKey, LocalStore, open_store


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
    for key in ("../etc/passwd", "a/../../b", "", "/", "/etc/passwd", "a/./b", "a\\..\\b", "a\0b"):
        with pytest.raises(BadKey, match="bad object key"):
            store.put_bytes(key, b"x")


def test_local_store_keys_never_resolve_outside_it_through_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    store = LocalStore(tmp_path / "store")
    store.put_bytes("videos/ok.mp4", b"ok")
    (store.root / "videos" / "link.mp4").symlink_to(outside / "secret")  # a file linked out
    (store.root / "linked").symlink_to(outside)  # a directory linked out
    (store.root / "videos" / "alias.mp4").symlink_to(store.root / "videos" / "ok.mp4")  # stays inside
    for key in ("videos/link.mp4", "linked/secret", "linked/new"):
        with pytest.raises(BadKey, match="outside the store"):
            store.get_bytes(key)
        with pytest.raises(BadKey, match="outside the store"):
            store.put_bytes(key, b"overwritten")
        with pytest.raises(BadKey):
            store.exists(key)
    with pytest.raises(BadKey):
        store.list("linked/")
    assert (outside / "secret").read_bytes() == b"secret" and not (outside / "new").exists()
    assert store.get_bytes("videos/alias.mp4") == b"ok"
    assert store.list("") == ["videos/alias.mp4", "videos/ok.mp4"]  # the links out are not listed


def test_local_store_creates_once_and_updates_without_losing_a_change(tmp_path):
    store, f = LocalStore(tmp_path / "store"), tmp_path / "f"
    f.write_bytes(b"first")
    assert store.put_file_if_absent("a/b", f) is True
    f.write_bytes(b"second")
    assert store.put_file_if_absent("a/b", f) is False and store.get_bytes("a/b") == b"first"
    assert store.update_bytes("n", lambda old: (old or b"") + b"1") == b"1"
    assert store.update_bytes("n", lambda old: (old or b"") + b"2") == b"12"
    assert store.list("") == ["a/b", "n"]  # no lock or temporary file shows


def test_open_store_rejects_unknown_schemes():
    with pytest.raises(ValueError, match="unsupported"):
        open_store("ftp://example/x")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint(monkeypatch):
    """An S3-compatible server (moto) on loopback; its buckets live as long as this process."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        for var, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(var, value)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.mark.integration
def test_s3_store_creates_once_and_a_conflicting_update_is_redone(s3_endpoint, tmp_path):
    """Conditional PUTs: `If-None-Match: *` creates once; an update whose object changed since
    it was read (`If-Match` fails) reads again and redoes its change, so no change is lost."""
    store = open_store("s3://percolate-conditional/p", endpoint_url=s3_endpoint)
    store.client.create_bucket(Bucket="percolate-conditional")
    other = open_store("s3://percolate-conditional/p", endpoint_url=s3_endpoint)
    f = tmp_path / "f"
    f.write_bytes(b"first")
    assert store.put_file_if_absent("a/b", f) is True
    f.write_bytes(b"second")
    assert other.put_file_if_absent("a/b", f) is False and store.get_bytes("a/b") == b"first"
    seen = []

    def add_a(old):
        seen.append(old)
        if len(seen) == 1:  # another writer commits between this read and this write
            other.update_bytes("m", lambda o: (o or b"") + b"b")
        return (old or b"") + b"a"

    assert store.update_bytes("m", add_a) == b"ba"
    assert seen == [None, b"b"] and store.get_bytes("m") == b"ba"


@pytest.mark.integration
def test_s3_store_round_trip(s3_endpoint):
    store = open_store("s3://percolate-test/prefix", endpoint_url=s3_endpoint)
    store.client.create_bucket(Bucket="percolate-test")
    exercise(store)
    # the prefix is respected: the object lies under it in the bucket
    keys = [o["Key"] for o in store.client.list_objects_v2(Bucket="percolate-test")["Contents"]]
    assert keys == ["prefix/videos/dt=2026-01-01/a.mp4", "prefix/videos/dt=2026-01-01/b.mp4",
                    "prefix/videos/dt=2026-01-02/c.mp4"]
