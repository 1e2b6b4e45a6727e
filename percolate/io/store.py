"""The object store behind one small interface: a local directory or S3.

Which one is used is chosen by the store URI in configuration (`/path` or
`s3://bucket/prefix`), never by the caller. Keys are always '/'-separated.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Protocol

# a read-modify-write: the object's bytes (None when absent) -> its new bytes; may run again on a conflict
Change = Callable[[bytes | None], bytes]


class ObjectStore(Protocol):
    uri: str

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def put_file(self, key: str, path: str | Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def local_copy(self, key: str): ...
    def put_file_if_absent(self, key: str, path: str | Path) -> bool: ...
    def update_bytes(self, key: str, change: Change) -> bytes: ...


class StoreConflict(RuntimeError):
    """Concurrent writers kept changing an object; the update gave up (retry the command)."""


class BadKey(ValueError):
    """An object key that could name something outside the store: refused, never cleaned up."""


def _clean_key(key: str) -> str:
    """`key` without empty parts; refused when absolute, with `.`/`..` parts, a NUL or a backslash."""
    parts = [p for p in key.split("/") if p]
    if not parts or key.startswith("/") or any(p in (".", "..") for p in parts) or "\0" in key or "\\" in key:
        raise BadKey(f"bad object key {key!r}: keys are relative, '/'-separated, without '.' or '..' parts")
    return "/".join(parts)


class LocalStore:
    """A directory on the local (or a shared) filesystem."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def path(self, key: str) -> Path:
        """The file of `key`; refused (`BadKey`) if it resolves outside the store, symlinks
        included (a link inside the store pointing out, or a linked parent directory)."""
        return self._inside(self.root / _clean_key(key), key)

    def _inside(self, target: Path, key: str) -> Path:
        resolved = target.resolve()  # follows every symlink on the way, existing or not
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise BadKey(f"object key {key!r} resolves to {resolved}, outside the store {self.root}")
        return target

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

    def put_file_if_absent(self, key: str, path: str | Path) -> bool:
        """Copy `path` to `key` unless `key` exists (then False): a hard link of a finished
        copy, so two writers never both create it and nobody sees half a file."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.copyfile(path, tmp)
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    def update_bytes(self, key: str, change: Change) -> bytes:
        """Replace `key` with `change(old bytes or None)` under an exclusive lock (`fcntl.flock`
        on `.<name>.lock` beside it), so concurrent updates on this file system apply one
        after the other and none is lost."""
        import fcntl

        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(f".{target.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or its process dies
            new = change(target.read_bytes() if target.is_file() else None)
            self.put_bytes(key, new)
        return new

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix) if prefix.strip("/") else self.root
        if not base.exists():
            return []
        # rglob does not descend into linked directories; a linked file that points out is left out
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.resolve().is_relative_to(self.root)
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
        from botocore.config import Config

        # throttling and 5xx are retried here with backoff (botocore's standard mode); what is
        # still failing after that is raised: the task fails and Airflow retries it
        attempts = int(os.environ.get("PERCOLATE_S3_MAX_ATTEMPTS", "8"))
        self.client = boto3.client("s3", endpoint_url=endpoint_url,
                                   config=Config(retries={"mode": "standard", "max_attempts": attempts}))

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

    def put_file_if_absent(self, key: str, path: str | Path) -> bool:
        """Upload `path` to `key` unless it exists (then False): a conditional PUT
        (`If-None-Match: *`), one request, so objects up to 5 GB."""
        with open(path, "rb") as fh:
            return self._conditional_put(key, fh, IfNoneMatch="*")

    def _conditional_put(self, key: str, body, **condition: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **condition)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict",
                                                               "412", "409"):
                return False
            raise

    def update_bytes(self, key: str, change: Change, attempts: int = 20) -> bytes:
        """Replace `key` with `change(old bytes or None)` by optimistic concurrency: the PUT
        is conditional on the ETag read (`If-Match`, or `If-None-Match: *` when absent);
        when another writer got there first, read again and redo the change."""
        from botocore.exceptions import ClientError

        for attempt in range(attempts):
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                old, condition = obj["Body"].read(), {"IfMatch": obj["ETag"]}
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
                old, condition = None, {"IfNoneMatch": "*"}
            new = change(old)
            if self._conditional_put(key, new, **condition):
                return new
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        raise StoreConflict(f"{self.uri}/{key} kept changing under {attempts} attempts to update it")

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
