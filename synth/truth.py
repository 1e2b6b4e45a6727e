"""Reading a generated day's ground truth and asking what is visible when."""

from __future__ import annotations

import json

from percolate.core.layout import truth_key
from percolate.io.store import ObjectStore


def load_truth(store: ObjectStore, date: str) -> dict:
    """The ground-truth document of a generated day (KeyError-free: FileNotFoundError if absent)."""
    key = truth_key(date)
    if not store.exists(key):
        raise FileNotFoundError(f"no ground truth for {date} at {store.uri}/{key}: not a generated day?")
    return json.loads(store.get_bytes(key).decode("utf-8"))


def label_at(call: dict, t: float) -> str | None:
    """The brand whose cup is visible at presentation time `t` seconds, else None.

    An episode covers [start_s, end_s). Generated episodes never overlap; if hand-made
    truth has overlaps, the longest episode wins (then the first listed).
    """
    best, best_len = None, -1.0
    for cup in call.get("cups", ()):
        if cup["start_s"] <= t < cup["end_s"]:
            length = cup["end_s"] - cup["start_s"]
            if length > best_len:
                best, best_len = cup["brand"], length
    return best
