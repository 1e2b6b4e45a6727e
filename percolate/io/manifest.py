"""The day's manifest: which stored video belongs to which call and user."""

from __future__ import annotations

import csv
import io

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
    text = store.get_bytes(key).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
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


def write_manifest(store: ObjectStore, date: str, rows: list[dict]) -> str:
    """Write the day's manifest (replacing it), rows sorted by call id."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["call_id"]):
        writer.writerow({c: row.get(c, "") for c in MANIFEST_COLUMNS})
    key = manifest_key(date)
    store.put_bytes(key, buf.getvalue().encode("utf-8"))
    return key
