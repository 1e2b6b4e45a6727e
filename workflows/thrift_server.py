"""The analysts' JDBC/ODBC endpoint: Spark's Thrift server over the shared catalog, read-only.

    python -m workflows.thrift_server start [--port 10000]   # or infra/thrift.sh start
    python -m workflows.thrift_server stop
    infra/beeline.sh -u jdbc:hive2://127.0.0.1:10000/percolate -n analyst -e "SHOW TABLES"

Any JDBC or ODBC client (beeline, a BI tool, PyHive) sees the same views `percolate query`
reads. The server lets a session read and nothing else, four walls deep:
- `ReadOnlyGuard` (infra/thrift/ReadOnlyGuard.java, compiled here against the venv's Spark on
  first start) is a Spark check rule: every statement is refused after analysis and before
  it runs if it holds a command other than SHOW/DESCRIBE/EXPLAIN/USE/SET-without-a-value, or a
  `reflect`/`java_method`/`try_reflect` call;
- reading files by path is off (`spark.sql.runSQLOnFiles=false`);
- the metastore is reached as a role that may only SELECT (PERCOLATE_METASTORE_READER_URL,
  printed by infra/postgres.sh), so DDL that got past the guard fails in the database;
- the server's environment holds none of the pipeline's secrets (no object-store keys, no
  metastore owner password): only what Java and Spark need.
It does not stop a query from being expensive; a shared deployment would add Spark's fair
scheduler pools and, for logins, Hive's LDAP or Kerberos authentication (here: loopback only).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from percolate.core.settings import Settings
from percolate.io.metastore import spark_jars
from percolate.io.spark import metastore_conf, spark_conf
from workflows.launch import service_main, stop_groups

REPO = Path(__file__).resolve().parents[1]
GUARD_SOURCE = REPO / "infra" / "thrift" / "ReadOnlyGuard.java"
GUARD_CLASS = "percolate.ReadOnlyGuard"
MAIN_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
# what the server's JVM may see of this process' environment: nothing secret
PASSED_ENV = ("PATH", "JAVA_HOME", "LANG", "LC_ALL", "TZ")


def state_dir(settings: Settings) -> Path:
    return settings.home / "thrift"


def guard_jar(settings: Settings) -> Path:
    """The read-only guard, compiled against this venv's Spark jars when missing or stale."""
    jar = state_dir(settings) / "percolate-readonly-guard.jar"
    if jar.exists() and jar.stat().st_mtime >= GUARD_SOURCE.stat().st_mtime:
        return jar
    javac = shutil.which("javac", path=f"{os.environ.get('JAVA_HOME', '')}/bin{os.pathsep}{os.environ.get('PATH', '')}")
    if javac is None:
        raise RuntimeError("javac (a JDK 17) is needed once, to compile the Thrift server's read-only guard")
    classes = state_dir(settings) / "classes"
    shutil.rmtree(classes, ignore_errors=True)
    classes.mkdir(parents=True)
    out = subprocess.run([javac, "-nowarn", "-d", str(classes), "-cp", f"{spark_jars()}/*", str(GUARD_SOURCE)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"compiling {GUARD_SOURCE.name} failed:\n{out.stderr[-3000:]}")
    tmp = jar.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for f in sorted(classes.rglob("*.class")):
            z.write(f, f.relative_to(classes).as_posix())
    tmp.replace(jar)
    return jar


def server_conf(settings: Settings) -> dict[str, str]:
    """Spark settings of the server: the jobs' own, but the metastore as the reader role."""
    if not settings.metastore_reader_url:
        raise RuntimeError("PERCOLATE_METASTORE_READER_URL is not set: the Thrift server reaches the shared "
                           "metastore as a role that may only read (infra/postgres.sh start prints it)")
    conf = {k: v for k, v in spark_conf(settings).items() if not k.startswith("spark.hadoop.javax.jdo")}
    conf.update(metastore_conf(settings, settings.metastore_reader_url))
    conf.update({
        "spark.sql.extensions": GUARD_CLASS,
        "spark.sql.runSQLOnFiles": "false",
        "spark.driver.memory": "1g",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
    })
    return conf


def server_env() -> dict[str, str]:
    import pyspark

    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update({"SPARK_HOME": str(Path(pyspark.__file__).parent), "SPARK_LOCAL_IP": "127.0.0.1",
                "HOME": "/tmp"})
    return env


def command(settings: Settings, port: int) -> list[str]:
    conf = server_conf(settings)
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--class", MAIN_CLASS, "--master", "local[2]",
           "--name", "percolate-thrift", "--jars", str(guard_jar(settings))]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd + ["spark-internal", "--hiveconf", f"hive.server2.thrift.port={port}",
                  "--hiveconf", "hive.server2.thrift.bind.host=127.0.0.1"]


def jdbc_url(settings: Settings, port: int) -> str:
    return f"jdbc:hive2://127.0.0.1:{port}/{settings.database}"


def start(settings: Settings, port: int = 10000, wait_s: float = 180) -> int:
    """Start the server in its own session; wait until it accepts connections; its pid."""
    state_dir(settings).mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / "thrift-server.log"
    cmd = command(settings, port)
    with log_path.open("a") as log:
        proc = subprocess.Popen(cmd, env=server_env(), cwd=state_dir(settings), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    (state_dir(settings) / "server.pid").write_text(str(proc.pid))
    deadline = time.time() + wait_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the Thrift server exited ({proc.returncode}); log: {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return proc.pid
        except OSError:
            if time.time() > deadline:
                stop(settings)
                raise RuntimeError(f"the Thrift server did not listen on port {port} within {wait_s:.0f} s "
                                   f"(log: {log_path})") from None
            time.sleep(1)


def stop(settings: Settings) -> None:
    stop_groups([state_dir(settings) / "server.pid"])


def main(argv: list[str] | None = None) -> int:
    def started(settings: Settings, port: int) -> str:
        pid = start(settings, port)
        return (f"Thrift JDBC server up (pid {pid}), read-only: {jdbc_url(settings, port)}\n"
                f"  {REPO / 'infra' / 'beeline.sh'} -u {jdbc_url(settings, port)} -n analyst")
    return service_main(__doc__.split("\n\n")[0], 10000, started, stop, argv)


if __name__ == "__main__":
    sys.exit(main())
