"""The object store behind one small interface: a local directory or S3.

Which one is used is chosen by the store URI in configuration (`/path` or
`s3://bucket/prefix`), never by the caller. Keys are always '/'-separated.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol


class ObjectStore(Protocol):
    uri: str

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def put_file(self, key: str, path: str | Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def local_copy(self, key: str): ...


def _clean_key(key: str) -> str:
    parts = [p for p in key.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"bad object key: {key!r}")
    return "/".join(parts)


class LocalStore:
    """A directory on the local (or a shared) filesystem."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # readers never see half a file

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def put_file(self, key: str, path: str | Path) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    @contextmanager
    def local_copy(self, key: str) -> Iterator[str]:
        """A local file path for `key` (the file itself: no copy is needed)."""
        yield str(self.path(key))


class S3Store:
    """An S3 bucket (or any S3-compatible server) under an optional prefix.

    Credentials come from the environment (AWS_ACCESS_KEY_ID, ...) as boto3 reads them.
    """

    def __init__(self, uri: str, endpoint_url: str | None = None):
        import boto3  # imported here: only S3 users pay for it

        rest = uri[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        self.uri = uri
        self.endpoint_url = endpoint_url
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        key = _clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def put_file(self, key: str, path: str | Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def list(self, prefix: str) -> list[str]:
        full = f"{self.prefix}/{prefix.strip('/')}" if self.prefix else prefix.strip("/")
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        ):
            keys += [self._strip(o["Key"]) for o in page.get("Contents", [])]
        return sorted(keys)

    @contextmanager
    def local_copy(self, key: str) -> Iterator[str]:
        """Download `key` to a temporary file that is removed afterwards."""
        suffix = Path(key).suffix
        fd, tmp = tempfile.mkstemp(prefix="percolate-", suffix=suffix)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self._key(key), tmp)
            yield tmp
        finally:
            os.unlink(tmp)


def open_store(uri: str, endpoint_url: str | None = None) -> ObjectStore:
    """The store for `uri`: `s3://bucket/prefix` or a local directory."""
    if uri.startswith("s3://"):
        return S3Store(uri, endpoint_url=endpoint_url)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"unsupported object store URI: {uri!r} (want a path or s3://)")
    return LocalStore(uri.removeprefix("file://"))
