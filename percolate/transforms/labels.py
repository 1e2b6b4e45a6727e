"""Labels from people: checking imported rows, and simulating the reorder button.

Pure functions over pandas frames (a day's labels are small): the import job
(`jobs/import_labels.py`) gives them what the warehouse knows (the days' calls), writes what
they accept to `labels` and what they refuse to `label_quarantine` with a reason code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re

import pandas as pd

from percolate.core.tables import LABEL_SOURCES, LABEL_VERDICTS, NO_BRAND, WAREHOUSE, names

# reason codes of label_quarantine
LABEL_REASONS = {
    "missing_field": "user_id, day, brand or verdict is empty",
    "bad_date": "day is not a YYYY-MM-DD date",
    "bad_verdict": f"verdict is not one of {', '.join(LABEL_VERDICTS)}",
    "bad_source": f"source is not one of {', '.join(LABEL_SOURCES)}",
    "unknown_brand": f"brand is not a class of the production heavy model (or, for a frame, {NO_BRAND!r})",
    "from_the_future": "the label is about a day after its arrival, or was given after it arrived",
    "unknown_user_day": "the user had no processed call on that day",
    "unknown_frame": "no such sampled frame: the call is not the user's on that day, or the index is out of range",
    "duplicate": "the same subject and brand is labelled earlier in the file",
}
REQUIRED = ("user_id", "day", "brand", "verdict")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value).strip()


def require_columns(columns) -> None:
    """A file without the label columns is a wrong file, not rows to quarantine: say so."""
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ValueError(f"the labels lack columns {missing} (have {list(columns)}); want user_id, day, brand, "
                         f"verdict and optionally call_id, frame_index, source, known_at")


def subject_of(row: dict) -> str:
    if row.get("call_id"):
        return f"frame:{row['call_id']}:{int(row['frame_index'])}"
    return f"user_day:{row['user_id']}:{row['day']}"


def label_id(subject: str, brand: str, verdict: str, source: str) -> str:
    return hashlib.sha256(f"{subject}|{brand}|{verdict}|{source}".encode()).hexdigest()[:20]


def check_labels(raw: pd.DataFrame, *, arrived: str, brands: list[str], calls: pd.DataFrame,
                 default_source: str = "import", arrived_at: dt.datetime | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split imported rows into labels and quarantined rows (each with a reason code).

    `raw`: columns user_id, day, brand, verdict, and optionally call_id + frame_index (a frame's
    label), source, known_at. `arrived`: the date the labels arrive (their partition).
    `calls`: the calls table's rows of the days the labels name (call_id, user_id, day,
    status, sampled_frames): a label must be about a user-day or a frame that was processed.
    """
    require_columns(raw.columns)
    arrived_at = arrived_at or dt.datetime.fromisoformat(arrived).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    ok_calls = calls[calls["status"] == "ok"] if len(calls) else calls
    user_days = {(str(u), str(d)) for u, d in zip(ok_calls.get("user_id", []), ok_calls.get("day", []))}
    frames = {str(c): (str(u), str(d), int(n or 0)) for c, u, d, n in
              zip(ok_calls.get("call_id", []), ok_calls.get("user_id", []), ok_calls.get("day", []),
                  ok_calls.get("sampled_frames", []))}
    known_brands = set(brands)
    good, bad, seen = [], [], set()
    for number, record in enumerate(raw.to_dict("records"), start=1):
        row = {k: _text(record.get(k)) for k in ("user_id", "day", "brand", "verdict", "call_id", "source")}
        row["source"] = row["source"] or default_source

        def refuse(reason: str, message: str = "") -> None:
            bad.append({"row_number": number, "raw": json.dumps(record, default=str, sort_keys=True),
                        "reason": reason, "message": message or LABEL_REASONS[reason]})

        if any(not row[k] for k in REQUIRED):
            refuse("missing_field", f"empty: {', '.join(k for k in REQUIRED if not row[k])}")
            continue
        if not DATE_PATTERN.match(row["day"]):
            refuse("bad_date", f"day {row['day']!r} is not YYYY-MM-DD")
            continue
        row["verdict"] = row["verdict"].lower()
        if row["verdict"] not in LABEL_VERDICTS:
            refuse("bad_verdict", f"verdict {row['verdict']!r}")
            continue
        if row["source"] not in LABEL_SOURCES:
            refuse("bad_source", f"source {row['source']!r}")
            continue
        if row["brand"] not in known_brands and not (row["brand"] == NO_BRAND and row["call_id"]):
            refuse("unknown_brand", f"brand {row['brand']!r} is not one of the model's classes")
            continue
        known_at = pd.to_datetime(_text(record.get("known_at")) or None, utc=True, errors="coerce")
        if pd.isna(known_at):
            known_at = pd.Timestamp(arrived_at)
        if row["day"] > arrived or known_at > pd.Timestamp(arrived_at):
            refuse("from_the_future", f"day {row['day']}, known at {known_at}, arrived {arrived}")
            continue
        if row["call_id"]:
            index = pd.to_numeric(record.get("frame_index"), errors="coerce")
            owner = frames.get(row["call_id"])
            if pd.isna(index) or owner is None or owner[:2] != (row["user_id"], row["day"]) \
                    or not 0 <= int(index) < owner[2]:
                refuse("unknown_frame", f"call {row['call_id']!r} frame {record.get('frame_index')!r}")
                continue
            row["frame_index"] = int(index)
        elif (row["user_id"], row["day"]) not in user_days:
            refuse("unknown_user_day", f"user {row['user_id']!r} on {row['day']}")
            continue
        subject = subject_of(row)
        if (subject, row["brand"]) in seen:
            refuse("duplicate", f"{subject} {row['brand']}")
            continue
        seen.add((subject, row["brand"]))
        good.append({"label_id": label_id(subject, row["brand"], row["verdict"], row["source"]),
                     "subject": subject, "call_id": row["call_id"] or None,
                     "frame_index": row.get("frame_index"), "user_id": row["user_id"], "day": row["day"],
                     "brand": row["brand"], "verdict": row["verdict"], "source": row["source"],
                     "known_at": known_at.to_pydatetime().replace(tzinfo=None)})
    labels = pd.DataFrame(good, columns=names(WAREHOUSE["labels"]))
    labels["frame_index"] = labels["frame_index"].astype("Int32")
    return labels, pd.DataFrame(bad, columns=names(WAREHOUSE["label_quarantine"]))


def simulate_reorder_button(daily: pd.DataFrame, truth_pairs: set[tuple[str, str]], day: str, seed: int = 0,
                            click_rate: float = 0.2, wrong_click_rate: float = 0.03) -> pd.DataFrame:
    """What users do with the reorder button a detection shows them, from the day's truth.

    `daily`: the day's confirmed user_brand_daily rows (each showed the user a button);
    `truth_pairs`: the (user_id, brand) pairs truly seen that day. Most users ignore the
    button; a share `click_rate` answers: pressing it confirms the brand, dismissing it
    rejects it, and a share `wrong_click_rate` of those who answer gets it wrong. Labels
    arrive during the next day. Deterministic for a seed and a day.
    """
    rng = random.Random(f"{seed}/{day}")
    start = dt.datetime.fromisoformat(day) + dt.timedelta(days=1)
    rows = []
    for record in daily.sort_values(["user_id", "brand"]).to_dict("records"):
        if rng.random() >= click_rate:
            continue
        right = (str(record["user_id"]), str(record["brand"])) in truth_pairs
        if rng.random() < wrong_click_rate:
            right = not right
        rows.append({"user_id": record["user_id"], "day": day, "brand": record["brand"],
                     "verdict": "confirmed" if right else "rejected", "source": "reorder_button",
                     "known_at": (start + dt.timedelta(seconds=rng.randrange(0, 20 * 3600))).isoformat() + "Z"})
    return pd.DataFrame(rows, columns=["user_id", "day", "brand", "verdict", "source", "known_at"])
