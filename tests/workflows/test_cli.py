"""The command line: every command has --help; ingest copies files into the day's layout."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from workflows.cli import build_parser, main
from percolate.io.manifest import read_manifest
from percolate.io.store import LocalStore

COMMANDS = ["generate-day", "ingest", "nightly", "train", "query", "evaluate", "demo", "models"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    out = subprocess.run([sys.executable, "-m", "workflows.cli", command, "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage: percolate" in out.stdout


def test_figure_commands_take_json():
    parser = build_parser()
    for command in ["generate-day", "ingest", "nightly", "train", "query", "evaluate", "demo"]:
        sub = parser._subparsers._group_actions[0].choices[command]
        assert any("--json" in a.option_strings for a in sub._actions), command


def test_ingest_copies_files_and_writes_the_manifest(tmp_path, monkeypatch, capsys):
    store_dir = tmp_path / "store"
    monkeypatch.setenv("PERCOLATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERCOLATE_STORE", str(store_dir))
    a, b = tmp_path / "Team call 1.mp4", tmp_path / "b.webm"
    a.write_bytes(b"aaa")
    b.write_bytes(b"bbbb")
    users = tmp_path / "users.csv"
    with users.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([["file", "user_id"], [a.name, "u1"], [str(b), "u2"]])
    assert main(["ingest", "--date", "2026-02-03", str(a), str(b), "--users", str(users), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["manifest_calls"] == 2
    rows = read_manifest(LocalStore(store_dir), "2026-02-03")
    assert [(r["call_id"], r["user_id"], r["video_key"], r["size_bytes"]) for r in rows] == [
        ("Team-call-1", "u1", "videos/dt=2026-02-03/Team-call-1.mp4", 3),
        ("b", "u2", "videos/dt=2026-02-03/b.webm", 4),
    ]
    assert LocalStore(store_dir).get_bytes("videos/dt=2026-02-03/b.webm") == b"bbbb"
    # again: the same calls, nothing added (tests/workflows/test_ingest.py has the details)
    assert main(["ingest", "--date", "2026-02-03", str(a), str(b), "--users", str(users)]) == 0
    assert "0 files ingested, 2 already there; the manifest for 2026-02-03 now has 2 calls" in capsys.readouterr().out
    assert len(read_manifest(LocalStore(store_dir), "2026-02-03")) == 2


def test_ingest_without_a_user_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCOLATE_STORE", str(tmp_path / "store"))
    f = tmp_path / "x.mp4"
    f.write_bytes(b"x")
    users = tmp_path / "users.csv"
    users.write_text("file,user_id\nother.mp4,u1\n")
    with pytest.raises(SystemExit, match="no user_id for"):
        main(["ingest", "--date", "2026-02-03", str(f), "--users", str(users)])
