"""One writer per date: taking, renewing, refusing, expiring and releasing a date's lease."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from percolate.io.lease import DateLeases, LeaseHeld


def test_a_second_run_is_refused_with_the_holder_named(tmp_path):
    leases = DateLeases(tmp_path)
    leases.acquire("2026-05-01", "scheduled__2026-05-01")
    leases.acquire("2026-05-01", "scheduled__2026-05-01")  # a later task (or a retry) of the same run
    leases.acquire("2026-05-02", "backfill__2026-05-02")  # other dates are free
    with pytest.raises(LeaseHeld, match=r"2026-05-01 is being written by run 'scheduled__2026-05-01'.*"
                                        r"percolate lease release 2026-05-01"):
        leases.acquire("2026-05-01", "backfill__2026-05-01")
    leases.check("2026-05-01", "scheduled__2026-05-01")
    with pytest.raises(LeaseHeld, match="no longer holds"):
        leases.check("2026-05-01", "backfill__2026-05-01")


def test_release_frees_the_date_only_for_its_holder(tmp_path):
    leases = DateLeases(tmp_path)
    leases.acquire("2026-05-01", "a")
    assert not leases.release("2026-05-01", "b")
    assert leases.release("2026-05-01", "a")
    leases.acquire("2026-05-01", "b")
    assert [lease.holder for lease in leases.all()] == ["b"]
    assert leases.release("2026-05-01")  # by hand: whoever holds it


def test_a_dead_holders_lease_expires_and_is_taken_over(tmp_path):
    leases = DateLeases(tmp_path, ttl=dt.timedelta(seconds=0))
    leases.acquire("2026-05-01", "dead-run")
    taken = DateLeases(tmp_path).acquire("2026-05-01", "new-run")
    assert taken.holder == "new-run" and DateLeases(tmp_path).get("2026-05-01").holder == "new-run"
    with pytest.raises(LeaseHeld, match="no longer holds"):
        DateLeases(tmp_path).check("2026-05-01", "dead-run")  # a zombie cannot commit


def test_a_torn_lease_file_counts_as_expired(tmp_path):
    (tmp_path / "dt=2026-05-01.json").write_text('{"date": "2026-05')
    assert DateLeases(tmp_path).acquire("2026-05-01", "r").holder == "r"
    assert json.loads((tmp_path / "dt=2026-05-01.json").read_text())["holder"] == "r"
