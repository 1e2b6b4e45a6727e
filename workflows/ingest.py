"""`percolate ingest`: copy your own videos into a day's layout and record them in its manifest.

Idempotent: a file whose content (size, then sha256) is already recorded for the date keeps
the call id it has, is not copied again and adds no row, whatever its name is now.

Safe against a concurrent ingest of the same date: a call id is claimed by creating its object
(`put_file_if_absent`: a hard link on a local store, `If-None-Match: *` on S3), so two ingests
never write the same video key, and the manifest is changed by one atomic read-modify-write
(`update_manifest`: `flock` on a local store, `If-Match` on S3), so neither loses the other's
rows. A video copied by an ingest that died before its manifest update is found by its content
and reused by the next ingest.
"""

from __future__ import annotations

import csv
import hashlib
import re
from itertools import chain, count
from pathlib import Path

from percolate.core.layout import check_date, manifest_key, video_key
from percolate.io.manifest import read_manifest, update_manifest
from percolate.io.store import ObjectStore


class IngestError(ValueError):
    """The files or the users file cannot be ingested as given."""


def read_users(csv_path: str | Path) -> dict[str, str]:
    """The users file: `file,user_id` rows -> {file as written: user id}."""
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"file", "user_id"} <= set(reader.fieldnames or []):
            raise IngestError(f"{csv_path}: want columns file,user_id; has {reader.fieldnames}")
        return {row["file"].strip(): row["user_id"].strip() for row in reader}


def user_of(users: dict[str, str], path: Path) -> str | None:
    return users.get(str(path)) or users.get(path.name) or users.get(str(path.resolve()))


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Contents:
    """The sha256 of stored objects, each read at most once per ingest."""

    def __init__(self, store: ObjectStore):
        self.store, self.known = store, {}

    def of(self, key: str) -> str:
        """The object's sha256; "" when the manifest names an object that is not there."""
        if key not in self.known:
            try:
                present = self.store.exists(key)
            except ValueError:  # a key no store may hold (BadKey): no content of ours
                present = False
            if not present:
                return ""
            with self.store.local_copy(key) as path:
                self.known[key] = sha256_of(path)
        return self.known[key]

    def same(self, row: dict, size: int, digest: str) -> bool:
        return int(row["size_bytes"] or 0) == size and self.of(row["video_key"]) == digest


def _claim(store: ObjectStore, contents: _Contents, date: str, path: Path, digest: str,
           taken: set[str]) -> tuple[str, str]:
    """A call id and video key for `path`: the file name cleaned up, `-2`, `-3`... when taken
    in the manifest or by another content in the store; the object is created by the claim."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "call"
    for n in count(1):
        call_id = base if n == 1 else f"{base}-{n}"
        if call_id in taken:
            continue
        key = video_key(date, call_id, path.suffix or ".mp4")
        if store.put_file_if_absent(key, path):
            contents.known[key] = digest
            return call_id, key
        if contents.of(key) == digest:
            return call_id, key
    raise AssertionError("unreachable")


def _same_user(row: dict, path: Path, user: str, date: str) -> None:
    if row["user_id"] != user:
        raise IngestError(f"{path} is already recorded for {date} as call {row['call_id']} of user "
                          f"{row['user_id']}, not {user}: fix the users file or the manifest")


def ingest(store: ObjectStore, date: str, files: list[Path], users: dict[str, str]) -> dict:
    """Copy `files` into `date`'s layout and add them to its manifest; see the module's doc."""
    check_date(date)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise IngestError(f"no such file: {', '.join(missing)}")
    unknown = [str(f) for f in files if not user_of(users, f)]
    if unknown:
        raise IngestError(f"the users file gives no user_id for: {', '.join(unknown)}")
    contents = _Contents(store)
    recorded = read_manifest(store, date) if store.exists(manifest_key(date)) else []
    files_of = [(f, f.stat().st_size, sha256_of(f), user_of(users, f)) for f in files]
    planned: list[dict] = []
    for path, size, digest, user in files_of:
        known = next((r for r in recorded + planned if contents.same(r, size, digest)), None)
        if known is not None:
            _same_user(known, path, user, date)
            continue
        call_id, key = _claim(store, contents, date, path, digest, {r["call_id"] for r in recorded + planned})
        planned.append({"call_id": call_id, "user_id": user, "video_key": key, "size_bytes": size})

    def add_planned(rows: list[dict]) -> list[dict]:
        rows = list(rows)
        for row in planned:
            if any(contents.same(r, row["size_bytes"], contents.of(row["video_key"])) for r in rows):
                continue  # a concurrent ingest recorded the same content meanwhile
            call_id, taken = row["call_id"], {r["call_id"] for r in rows}
            # taken by a concurrent ingest's file of another extension: another id, the same object
            call_id = next(c for c in chain([call_id], (f"{call_id}-{n}" for n in count(2))) if c not in taken)
            rows.append(dict(row, call_id=call_id))
        return rows

    final = update_manifest(store, date, add_planned) if planned else recorded
    ingested = []
    for path, size, digest, user in files_of:
        row = next(r for r in final if contents.same(r, size, digest))
        _same_user(row, path, user, date)  # a concurrent ingest may have recorded it meanwhile
        ingested.append(dict(row, file=str(path), new=any(row["video_key"] == p["video_key"] for p in planned)))
    return {"date": date, "ingested": ingested, "manifest_calls": len(final)}
