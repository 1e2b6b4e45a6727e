"""Shared fixtures: one local SparkSession for the whole test session, isolated settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from percolate.core.settings import Settings

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


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
