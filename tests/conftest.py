"""Shared fixtures: one local SparkSession for the whole test session, isolated settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from percolate.core.settings import Settings

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

# `make test` runs the suite on two pytest-xdist workers, a module at a time (`--dist loadscope
# --no-loadscope-reorder`: a module's fixtures are built once), in collection order. The longest
# modules go first: the learning loop (about half the suite's CPU) starts at once on one worker
# while the other takes the nightly DAG module and then everything else; collected last, the
# loop would start late and run alone at the end (docs/development.md, "Tests").
LONGEST_FIRST = ("tests/e2e/test_weekly_loop.py", "tests/e2e/test_nightly_dag.py", "tests/e2e/test_scheduler.py",
                 "tests/benchmarks/test_bench_cost.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a module, and among the rest, is kept


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spark-home")


@pytest.fixture(scope="session")
def spark(spark_home):
    """One local SparkSession (Hive catalog on an embedded Derby in a temp dir), stopped at the end."""
    from percolate.io.spark import get_spark

    settings = Settings(home=spark_home, store_uri=str(spark_home / "store"), database="percolate_test")
    session = get_spark("percolate-tests", settings, master="local[2]")
    yield session
    session.stop()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", store_uri=str(tmp_path / "store"))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on loopback (infra/postgres.sh, the one users start), for the shared
    Hive metastore; `postgres.new_metastore()` gives the URL of a fresh, initialised one."""
    import socket
    import subprocess
    import tempfile
    import uuid
    from types import SimpleNamespace

    from percolate.io.metastore import grant_select, init_schema

    repo = Path(__file__).resolve().parents[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="percolate-pg-", dir="/tmp")  # the server's user must reach it
    env = {**os.environ, "PERCOLATE_PG_DIR": data, "PERCOLATE_PG_PORT": str(port)}
    script = str(repo / "infra" / "postgres.sh")
    out = subprocess.run([script, "start"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    base = f"postgresql://percolate:percolate@127.0.0.1:{port}"

    def new_database(prefix: str) -> str:
        """A fresh, empty database; its postgresql:// URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        psql = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qc",
                f"CREATE DATABASE {name} OWNER percolate"]
        subprocess.run(psql, check=True, capture_output=True)
        return f"{base}/{name}"

    def new_metastore() -> str:
        """A fresh metastore; its owner's URL (`reader_url` gives the read-only role's)."""
        url = new_database("metastore")
        settings = Settings(home=Path(data), store_uri=data, metastore_url=url)
        init_schema(settings)
        grant_select(settings, "percolate_reader")  # the role infra/postgres.sh creates
        return url

    def reader_url(url: str) -> str:
        return url.replace("percolate:percolate@", "percolate_reader:percolate_reader@")

    yield SimpleNamespace(port=port, new_database=new_database, new_metastore=new_metastore,
                          reader_url=reader_url)
    subprocess.run([script, "stop"], env=env, capture_output=True)


@pytest.fixture
def s3_endpoint(monkeypatch):
    """A loopback S3-compatible server (moto, as infra/local-s3.sh starts it) with test
    credentials in the environment; yields its URL and stops it afterwards."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
