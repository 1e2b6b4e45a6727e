"""The day's manifest: which stored video belongs to which call and user."""

from __future__ import annotations

import csv
import io
from typing import Callable

from percolate.core.layout import manifest_key
from percolate.core.tables import MANIFEST, names
from percolate.io.store import ObjectStore

MANIFEST_COLUMNS = tuple(names(MANIFEST))


class ManifestError(ValueError):
    """The manifest is missing or malformed: the run cannot know what to process."""


def read_manifest(store: ObjectStore, date: str) -> list[dict]:
    key = manifest_key(date)
    if not store.exists(key):
        raise ManifestError(f"no manifest for {date} at {store.uri}/{key}: generate or ingest the day first")
    return _parse(store.get_bytes(key), key)


def _parse(data: bytes, key: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ManifestError(f"manifest {key} lacks columns {missing}; has {reader.fieldnames}")
    rows, seen = [], set()
    for n, row in enumerate(reader, start=2):
        call_id, user_id = (row["call_id"] or "").strip(), (row["user_id"] or "").strip()
        if not call_id or not row["video_key"]:
            raise ManifestError(f"manifest {key} line {n}: empty call_id or video_key")
        if call_id in seen:
            raise ManifestError(f"manifest {key} line {n}: call_id {call_id!r} appears twice")
        seen.add(call_id)
        rows.append({
            "call_id": call_id,
            "user_id": user_id or None,
            "video_key": row["video_key"].strip(),
            "size_bytes": int(row["size_bytes"] or 0),
        })
    return rows


def _render(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["call_id"]):
        writer.writerow({c: row.get(c, "") for c in MANIFEST_COLUMNS})
    return buf.getvalue().encode("utf-8")


def write_manifest(store: ObjectStore, date: str, rows: list[dict]) -> str:
    """Write the day's manifest (replacing it), rows sorted by call id."""
    key = manifest_key(date)
    store.put_bytes(key, _render(rows))
    return key


def update_manifest(store: ObjectStore, date: str, change: Callable[[list[dict]], list[dict]]) -> list[dict]:
    """Apply `change` (the current rows, [] when there is no manifest -> the new rows) to the
    day's manifest as one atomic read-modify-write of the store (`update_bytes`: a lock on a
    local store, a conditional PUT on S3), so concurrent updates never lose each other's rows.
    `change` may run more than once; it must only compute. Returns the rows written."""
    key = manifest_key(date)
    written: list[dict] = []

    def apply(old: bytes | None) -> bytes:
        written[:] = change(_parse(old, key) if old is not None else [])
        return _render(written)

    store.update_bytes(key, apply)
    return written
