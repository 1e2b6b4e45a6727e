"""One writer per date partition: a lease taken by a run before it writes anything for a date.

The nightly run of a date, a backfill of it and a manual rerun must not write the same
partition at once (their stage data and publishes would interleave). The first task of a run
takes the date's lease, each later task renews it, the publish checks it still holds it just
before its commit, and the last task (or Airflow's failure callback) releases it.

A second writer gets `LeaseHeld`, naming the holder and when the lease expires. A holder that
died without releasing (machine lost, process killed) blocks the date only until its lease
expires (`ttl`, longer than one task may run); `percolate lease release DATE` frees it at once.

Leases are JSON files in one directory (`Settings.leases_dir`), created with O_EXCL and taken
over with an atomic rename, so every writer on the machine that runs the Airflow workers sees
them. Workers on several machines need that directory on a shared file system.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from percolate.core.layout import check_date

DEFAULT_TTL = dt.timedelta(hours=5)  # longer than a task's execution_timeout (4 h)


class LeaseHeld(RuntimeError):
    """Another run holds the date's lease."""


@dataclass(frozen=True)
class Lease:
    date: str
    holder: str  # the run id
    acquired_at: str
    expires_at: str
    host: str
    pid: int

    def expired(self, now: dt.datetime | None = None) -> bool:
        return (now or _now()) >= dt.datetime.fromisoformat(self.expires_at)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class DateLeases:
    """The leases of every date, as files `<root>/dt=<date>.json`."""

    def __init__(self, root: str | Path, ttl: dt.timedelta = DEFAULT_TTL):
        self.root, self.ttl = Path(root), ttl

    def _path(self, date: str) -> Path:
        return self.root / f"dt={check_date(date)}.json"

    def get(self, date: str) -> Lease | None:
        try:
            return Lease(**json.loads(self._path(date).read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):  # a torn or foreign file: treat as expired
            return Lease(date, "?", "", "1970-01-01T00:00:00+00:00", "?", 0)

    def all(self) -> list[Lease]:
        return [lease for p in sorted(self.root.glob("dt=*.json"))
                if (lease := self.get(p.stem.removeprefix("dt="))) is not None]

    def acquire(self, date: str, holder: str) -> Lease:
        """Take or renew the lease of `date` for run `holder`; raise LeaseHeld if another
        live run holds it. An expired lease is taken over."""
        self.root.mkdir(parents=True, exist_ok=True)
        now = _now()
        lease = Lease(check_date(date), holder, now.isoformat(), (now + self.ttl).isoformat(),
                      socket.gethostname(), os.getpid())
        path = self._path(date)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            current = self.get(date)
            if current is not None and current.holder != holder and not current.expired(now):
                raise LeaseHeld(
                    f"date {date} is being written by run {current.holder!r} (lease taken {current.acquired_at} "
                    f"on {current.host}, pid {current.pid}; it expires {current.expires_at}). Wait for that run, "
                    f"or if it is dead: percolate lease release {date}") from None
            # ours (a retry or a later task of the run) or expired: replace it atomically
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            tmp.write_text(json.dumps(asdict(lease)))
            os.replace(tmp, path)
            if (now_held := self.get(date)) is None or now_held.holder != holder:  # lost a race to take over
                raise LeaseHeld(f"date {date}: another run took the expired lease at the same moment") from None
            return lease
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(lease)))
        return lease

    def check(self, date: str, holder: str) -> None:
        """Raise LeaseHeld unless run `holder` holds the live lease of `date` (checked before a commit)."""
        current = self.get(date)
        if current is None or current.holder != holder or current.expired():
            who = "nobody" if current is None else f"run {current.holder!r}" + (" (expired)" if current.expired() else "")
            raise LeaseHeld(f"run {holder!r} no longer holds the lease of {date} ({who} does): not publishing")

    def release(self, date: str, holder: str | None = None) -> bool:
        """Drop the lease of `date` (only if `holder` holds it, when given); True if one was dropped."""
        current = self.get(date)
        if current is None or (holder is not None and current.holder != holder):
            return False
        self._path(date).unlink(missing_ok=True)
        return True


def open_leases(settings) -> DateLeases:
    return DateLeases(settings.leases_dir)
