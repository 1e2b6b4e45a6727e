"""Airflow for real, beside the shared metastore: api-server (UI and REST), scheduler,
dag-processor and triggerer, on PostgreSQL metadata with the LocalExecutor.

    python -m workflows.services start [--port 8080]   # or infra/airflow.sh start
    python -m workflows.services stop

`percolate nightly`/`backfill` keep using `airflow dags test` (no services needed); these
services are what runs the DAG on its schedule, and Airflow's own `airflow backfill create`.
The metadata database comes from AIRFLOW__DATABASE__SQL_ALCHEMY_CONN (infra/postgres.sh prints
it); Spark jobs reach the shared metastore through PERCOLATE_METASTORE_URL. Logs go to
`$PERCOLATE_HOME/logs/airflow-<component>.log`, pids to `$PERCOLATE_HOME/airflow/<component>.pid`.

The UI is for a loopback machine: every user is an admin without a login (Airflow's simple
auth manager, `all_admins`). A shared deployment configures a real auth manager instead.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import urllib.request

from percolate.core.settings import Settings
from workflows.launch import base_env, bin_dir, service_main, stop_groups

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def airflow_env(settings: Settings, port: int, env: dict | None = None) -> dict[str, str]:
    """The environment every Airflow component and task shares."""
    env = base_env(settings) if env is None else dict(env)
    conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not conn.startswith("postgresql"):
        raise RuntimeError("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN must name a PostgreSQL database "
                           "(infra/postgres.sh start prints one): SQLite runs one task at a time")
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    secret_file = settings.airflow_home / "jwt_secret"
    if not secret_file.exists():  # one secret for every component: tasks' tokens must verify
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    url = f"http://127.0.0.1:{port}"
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text().strip(),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": env.get("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "30"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    })
    return env


def airflow(env: dict, *args: str, timeout: float = 600) -> str:
    out = subprocess.run([str(bin_dir() / "airflow"), *args], env=env, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def start(settings: Settings, port: int = 8080, env: dict | None = None, wait_s: float = 240) -> dict[str, int]:
    """Migrate the metadata database, start the four components, wait for the UI; their pids."""
    env = airflow_env(settings, port, env)
    airflow(env, "db", "migrate")
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    pids = {}
    for name in COMPONENTS:
        log = (settings.logs_dir / f"airflow-{name}.log").open("a")
        cmd = [str(bin_dir() / "airflow"), name] + (["--port", str(port)] if name == "api-server" else [])
        proc = subprocess.Popen(cmd, env=env, cwd=settings.home, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        (settings.airflow_home / f"{name}.pid").write_text(str(proc.pid))
        pids[name] = proc.pid
    deadline = time.time() + wait_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5):
                break
        except OSError:
            if time.time() > deadline:
                stop(settings)
                raise RuntimeError(f"the Airflow api-server did not answer on port {port} within {wait_s:.0f} s "
                                   f"(log: {settings.logs_dir / 'airflow-api-server.log'})") from None
            time.sleep(2)
    return pids


def stop(settings: Settings) -> None:
    """Stop every component this module started (their process groups: tasks included)."""
    stop_groups([settings.airflow_home / f"{name}.pid" for name in COMPONENTS])


def main(argv: list[str] | None = None) -> int:
    def started(settings: Settings, port: int) -> str:
        pids = start(settings, port)
        return (f"Airflow is up: http://127.0.0.1:{port} (no login on loopback); components {pids}; "
                f"logs in {settings.logs_dir}")
    return service_main(__doc__.split("\n\n")[0], 8080, started, stop, argv)


if __name__ == "__main__":
    sys.exit(main())
