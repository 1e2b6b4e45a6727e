"""Launching Percolate's Airflow DAG and Spark jobs from the command line.

The embedded default: Airflow with SQLite metadata under `$PERCOLATE_HOME/airflow`, the
`spark_default` connection at `local[*,4]` (overridable with AIRFLOW_CONN_SPARK_DEFAULT),
spark-submit from this virtualenv. Each launch keeps the whole log under
`$PERCOLATE_HOME/logs/` and shows progress on stderr.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from percolate.core.layout import record_outcome, retrain_result_path, run_summary_path
from percolate.core.settings import Settings
from workflows.progress import bar

REPO = Path(__file__).resolve().parents[1]
NIGHTLY_TASKS = 12  # tasks of percolate_nightly: the progress bar's length


def bin_dir() -> Path:
    return Path(sys.executable).parent


def base_env(settings: Settings) -> dict[str, str]:
    """Environment for Airflow and spark-submit: settings, Python, PATH, connection."""
    env = dict(os.environ)
    env.update({
        "PERCOLATE_HOME": str(settings.home),
        "PERCOLATE_STORE": settings.store_uri,
        "PERCOLATE_REGISTRY": settings.registry_uri,
        "PERCOLATE_STAGE": settings.stage_uri,
        "PERCOLATE_DATABASE": settings.database,
        "PERCOLATE_METASTORE_URL": settings.metastore_url,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PATH": f"{bin_dir()}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": env.get("PERCOLATE_DAGS_FOLDER", str(REPO / "dags")),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
        "SPARK_LOCAL_IP": env.get("SPARK_LOCAL_IP", "127.0.0.1"),
    })
    env.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps({"conn_type": "spark", "host": settings.spark_master}))
    return env


def ensure_airflow_db(settings: Settings, env: dict[str, str]) -> None:
    """Create or migrate Airflow's metadata database once per PERCOLATE_HOME and database (quick
    when already done). Runs launched together (a backfill's `--max-parallel`) take turns: two
    concurrent `airflow db migrate` on a new database fail."""
    import fcntl
    import hashlib

    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    database = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite")
    marker = settings.airflow_home / f".migrated-{hashlib.sha256(database.encode()).hexdigest()[:12]}"
    with (settings.airflow_home / ".migrate.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        out = subprocess.run([str(bin_dir() / "airflow"), "db", "migrate"], env=env, cwd=settings.home,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        marker.write_text("ok\n")


def run_logged(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, progress=None) -> int:
    """Run `cmd`, keep its whole output in `log_path`; with `progress` (a bar), advance it
    on each task an Airflow run starts and show the pipeline's own `[percolate]` lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            if progress is None:
                continue
            task = re.search(r"\[DAG TEST\] starting task_id=(\S+)", line)
            if task:
                progress.set_postfix_str(task.group(1))
                progress.update(1)
            elif "[percolate]" in line:
                progress.write("  " + _shorten(line), file=sys.stderr)
        return proc.wait()


def _shorten(line: str) -> str:
    """A `[percolate]` log line without Airflow's timestamp and logger decoration."""
    line = line.rstrip()
    line = line[line.index("[percolate]"):]
    return re.sub(r"\s+\[airflow\.task\.hooks.*$", "", line)[:220]


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_nightly(settings: Settings, date: str, prefilter_model: str = "production",
                heavy_model: str = "production", progress: bool = True, drift_before: str = "",
                params: dict | None = None) -> Path:
    """Run the nightly DAG through Airflow (`airflow dags test`) for `date`; raise on failure.
    The date's outcome is recorded either way (`percolate.core.layout.run_outcome_path`).
    `params`: more of the DAG's params (`budget_usd`, `on_over_budget`)."""
    env = base_env(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    ensure_airflow_db(settings, env)
    conf = json.dumps({"prefilter_model": prefilter_model, "heavy_model": heavy_model,
                       "drift_reference_before": drift_before, **(params or {})})
    log_path = settings.logs_dir / f"nightly-{date}.log"
    summary = run_summary_path(settings.reports_dir, date)
    summary.unlink(missing_ok=True)  # written by this run's publish, or absent
    cmd = [str(bin_dir() / "airflow"), "dags", "test", "percolate_nightly", date, "--conf", conf]
    if progress:
        with bar(NIGHTLY_TASKS, f"nightly {date}", "task") as tasks:
            tasks.write(f"percolate: running DAG percolate_nightly for {date} through Airflow (log: {log_path})",
                        file=sys.stderr)
            rc = run_logged(cmd, env, settings.home, log_path, tasks)
    else:
        rc = run_logged(cmd, env, settings.home, log_path)
    if rc != 0 or not summary.exists() or _task_failed(log_path):
        reason = failure_reason(log_path.read_text(errors="replace"))
        record_outcome(settings.reports_dir, date, "failed", None, f"{reason or f'exit {rc}'}; log {log_path}")
        raise RuntimeError(f"the nightly DAG failed for {date}: {reason or f'exit {rc}'}\n"
                           f"last lines of {log_path}:\n" + tail(log_path))
    return summary


def run_retrain(settings: Settings, date: str, conf: dict) -> dict:
    """Run the weekly retrain DAG through Airflow (`airflow dags test`) for `date`; its result."""
    env = base_env(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    ensure_airflow_db(settings, env)
    log_path = settings.logs_dir / f"retrain-{date}.log"
    result = retrain_result_path(settings.reports_dir, date)
    result.unlink(missing_ok=True)
    cmd = [str(bin_dir() / "airflow"), "dags", "test", "percolate_weekly_retrain", date, "--conf", json.dumps(conf)]
    with bar(2, f"weekly retrain {date}", "task") as tasks:
        tasks.write(f"percolate: running DAG percolate_weekly_retrain for {date} through Airflow (log: {log_path})",
                    file=sys.stderr)
        rc = run_logged(cmd, env, settings.home, log_path, tasks)
    if rc != 0 or not result.exists() or _task_failed(log_path):
        reason = failure_reason(log_path.read_text(errors="replace"))
        raise RuntimeError(f"the weekly retrain DAG failed for {date}: {reason or f'exit {rc}'}\n"
                           f"last lines of {log_path}:\n" + tail(log_path))
    return json.loads(result.read_text())


def failure_reason(log_text: str) -> str | None:
    """The first exception a task of the run died with ("pkg.ManifestError: manifest ... lacks
    columns ..."): the last line of the first traceback in the log, shortened."""
    import re

    found = re.search(r"^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Exit)\b.*?)$", log_text, re.MULTILINE)
    return found.group(1)[:400] if found else None


def _task_failed(log_path: Path) -> bool:
    text = log_path.read_text(errors="replace")
    return "Marking task as FAILED" in text or "state=failed" in text


def spark_submit_cmd(settings: Settings, job: str, args: list[str]) -> list[str]:
    """The spark-submit command line of one Spark job on the configured master."""
    from percolate.core.tuning import submit_confs
    from percolate.io.jvm_archive import with_archive

    confs = [arg for key, value in with_archive(submit_confs()).items() for arg in ("--conf", f"{key}={value}")]
    return [str(bin_dir() / "spark-submit"), "--master", settings.spark_master, "--name", f"percolate-{job}",
            *confs, str(REPO / "jobs" / f"{job}.py"), *args]


def spark_submit(settings: Settings, job: str, args: list[str], log_name: str) -> None:
    """Run one Spark job with spark-submit on the configured master; raise on failure."""
    from percolate.io import jvm_archive

    jvm_archive.ensure()  # the drivers' class archive, built once for this JVM and class path
    env = base_env(settings)
    # under the guard: if this process dies, spark-submit and its workers stop too (percolate.orphan_guard)
    cmd = [sys.executable, "-m", "percolate.orphan_guard", "--", *spark_submit_cmd(settings, job, args)]
    log_path = settings.logs_dir / f"{log_name}.log"
    settings.home.mkdir(parents=True, exist_ok=True)
    rc = run_logged(cmd, env, settings.home, log_path)
    if rc != 0:
        reason = failure_reason(log_path.read_text(errors="replace")) or f"exit {rc}"
        raise RuntimeError(f"spark job {job} failed: {reason}\nlast lines of {log_path}:\n" + tail(log_path))


# ---- long-running services (Airflow's, the Thrift server) ---------------------------------------

def stop_groups(pid_files: list[Path], wait_s: float = 60) -> None:
    """SIGTERM the process groups services were started in (their children too) and wait until
    they have exited (SIGKILL after `wait_s`), so ports and logs are free when this returns;
    forget their pids."""
    import signal
    import time

    groups = []
    for pid_file in pid_files:
        if not pid_file.exists():
            continue
        try:
            group = int(pid_file.read_text())
            os.killpg(group, signal.SIGTERM)
            groups.append(group)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.monotonic() + wait_s
    while alive := [g for g in groups if group_alive(g)]:
        if time.monotonic() > deadline:
            for group in alive:
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = float("inf")
        time.sleep(0.2)
    for pid_file in pid_files:
        pid_file.unlink(missing_ok=True)


def group_alive(group: int) -> bool:
    """Whether a process of the group still runs (zombies, exited but not yet reaped, do not count)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
            return True
    return False


def service_main(description: str, default_port: int, start, stop, argv: list[str] | None = None) -> int:
    """`start|stop [--port N]`, the command line of every service module: `start(settings,
    port)` returns what to tell the user; `stop(settings)`."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.action == "stop":
        stop(settings)
    else:
        print(start(settings, args.port))
    return 0
