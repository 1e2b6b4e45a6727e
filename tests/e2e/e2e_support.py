"""What the end-to-end tests share: seeded models and table snapshots without volatile columns."""

from __future__ import annotations

from percolate.core.settings import Settings
from percolate.core.tables import WAREHOUSE_KEYS
from workflows.query import run_queries

VOLATILE = {"run_id", "published_at", "started_at", "finished_at", "publish_id"}
TABLES = tuple((table, ", ".join(key)) for table, key in WAREHOUSE_KEYS.items())
# measured, not derived from the data: differ between runs by nature
MEASURED = {"estimated_cost_usd", "cost_per_video_hour_usd", "code_version", "data_docs"}


def register_seeded_models(store) -> None:
    """Small untrained-but-real torch networks from a fixed seed, thresholds 0 (all frames pass)."""
    import torch

    from models.heavy import MobileNetLike
    from models.prefilter import PrefilterCNN
    from models.preprocess import InputSpec
    from models.registry import ModelRegistry
    from synth import BRAND_NAMES

    torch.manual_seed(0)
    registry = ModelRegistry(store)
    norm = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    pre = registry.register("prefilter", PrefilterCNN(), {
        "arch": "prefilter_cnn", "input": InputSpec(128, 72, **norm), "class_names": ["cup"], "threshold": 0.0})
    heavy = registry.register("heavy", MobileNetLike(num_classes=len(BRAND_NAMES)), {
        "arch": "mobilenet_like", "arch_kwargs": {"num_classes": len(BRAND_NAMES)},
        "input": InputSpec(256, 144, **norm), "class_names": list(BRAND_NAMES), "threshold": 0.0,
        "aggregation": {"min_frames": 2, "min_score": 0.0}})
    registry.set_alias("prefilter", "production", pre)
    registry.set_alias("heavy", "production", heavy)


def _stable(row: dict, drop: set[str]) -> dict:
    return {k: v for k, v in row.items() if k not in VOLATILE | MEASURED | drop and not k.startswith("cpu_s")}


def without_volatile(day: dict[str, list[dict]], drop: set[str] = frozenset()) -> dict[str, list[dict]]:
    """An exact snapshot of a day with volatile and measured columns (and `drop`) left out."""
    return {table: [_stable(r, set(drop)) for r in rows] for table, rows in day.items()}


def snapshots(settings: Settings, days: list[str], drop: set[str] = frozenset(), exact: bool = False,
              extra: list[str] = ()) -> dict:
    """Every table's rows for each day, from one Spark child process for all of them.

    Volatile and measured columns (and `drop`) are left out unless `exact`; the rows of the
    `extra` statements come back as they are, under the key "extra".
    """
    statements = [f"SELECT * FROM {t} WHERE dt = '{day}' ORDER BY {o}" for day in days for t, o in TABLES]
    results = iter(run_queries(settings, statements + list(extra)))
    out: dict = {day: {table: next(results) for table, _ in TABLES} for day in days}
    if not exact:
        out = {day: without_volatile(tables, drop) for day, tables in out.items()}
    out["extra"] = list(results)
    return out


def snapshot(settings: Settings, day: str) -> dict:
    return snapshots(settings, [day])[day]


# ---- an analyst polling the warehouse (poll_reader.py in a child process) ----------------------

def start_poll_reader(settings: Settings, dates: list[str], folder, wait_s: float = 180):
    """Start polling `dates`; returns once the first poll is written."""
    import subprocess
    import sys
    import time
    from pathlib import Path
    from types import SimpleNamespace

    from workflows.launch import base_env

    reader = SimpleNamespace(out=Path(folder) / "polls.jsonl", stop=Path(folder) / "stop",
                             log=Path(folder) / "reader.log")
    reader.proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("poll_reader.py")), ",".join(dates), str(reader.out),
         str(reader.stop)], env=base_env(settings), stdout=subprocess.DEVNULL, stderr=reader.log.open("w"))
    deadline = time.time() + wait_s
    while not (reader.out.exists() and reader.out.read_text().strip()):
        assert reader.proc.poll() is None and time.time() < deadline, reader.log.read_text()[-3000:]
        time.sleep(1)
    return reader


def stop_poll_reader(reader) -> list[dict]:
    """Stop the reader; its polls (a failed read is an error, not an observation)."""
    import json

    reader.stop.touch()
    reader.proc.wait(timeout=120)
    polls = [json.loads(line) for line in reader.out.read_text().splitlines()]
    errors = [p for p in polls if "error" in p]
    assert not errors, errors[:3]
    return polls


def remove_other_publishes(settings: Settings, date: str) -> list[str]:
    """Remove every publish of `date` but the committed one at once (retention 0), as the
    publish job does after its retention period, from a Spark child process; the removed ids.

    Only once no reader is left: the retention period exists because a query that started
    before a commit may still be reading the publish it replaced."""
    import json
    import subprocess
    import sys

    from workflows.launch import base_env

    code = ("import datetime, json, sys; from percolate.core.settings import Settings; "
            "from percolate.io.spark import get_spark; from percolate.io.warehouse import open_warehouse; "
            "settings = Settings.from_env(); "
            "spark = get_spark('percolate-remove-publishes', settings, master='local[1]'); "
            "removed = open_warehouse(spark, settings).remove_expired(sys.argv[1], datetime.timedelta(0)); "
            "spark.stop(); print(json.dumps(removed))")
    out = subprocess.run([sys.executable, "-c", code, date], env=base_env(settings), cwd=settings.home,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- an analyst over JDBC (Spark's Thrift server, beeline: the real Hive JDBC driver) -----------

def beeline(url: str, sql: str) -> list[dict[str, str]] | str:
    """Run one statement with beeline; its rows (every value as beeline prints it), or the
    error line beeline printed when the statement was refused or failed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pyspark

    env = {"PATH": os.environ.get("PATH", ""), "SPARK_HOME": str(Path(pyspark.__file__).parent),
           "HOME": "/tmp", "JAVA_HOME": os.environ.get("JAVA_HOME", "")}
    out = subprocess.run([str(Path(sys.executable).parent / "beeline"), "-u", url, "-n", "analyst", "--silent=true",
                          "--showHeader=true", "--outputformat=tsv2", "--disableQuotingForSV=true",
                          "--nullemptystring=false", "-e", sql],
                         env=env, capture_output=True, text=True, timeout=180)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error:")]
    if errors:
        return errors[0]
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout.split("> ", 1)[1] if out.stdout.startswith("0: jdbc:") else out.stdout  # the prompt
    lines = text.rstrip("\n").split("\n")  # tab-separated, unquoted: no value here holds a tab or newline
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def jdbc_differences(jdbc_rows: list[dict[str, str]], rows: list[dict]) -> list[str]:
    """Where JDBC's text values differ from Python's (numbers to 9 significant digits,
    timestamps as UTC instants, NULL as NULL); empty when they agree."""
    import datetime as dt

    def close(text: str, value) -> bool:
        if value is None:
            return text == "NULL"
        if isinstance(value, bool):
            return text.lower() == str(value).lower()
        if isinstance(value, (int, float)):
            return abs(float(text) - value) <= 1e-9 * max(1.0, abs(value))
        if isinstance(value, dt.datetime):  # Spark prints the session's time zone (UTC), no offset
            utc = value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
            return dt.datetime.fromisoformat(text) == utc
        return text == str(value)
    if len(jdbc_rows) != len(rows):
        return [f"{len(jdbc_rows)} rows over JDBC, {len(rows)} here"]
    out = []
    for n, (j, r) in enumerate(zip(jdbc_rows, rows)):
        if list(j) != list(r):
            out.append(f"row {n}: columns {list(j)} != {list(r)}")
        out += [f"row {n} {k}: {j.get(k)!r} != {r[k]!r}" for k in r if k in j and not close(j[k], r[k])]
    return out
