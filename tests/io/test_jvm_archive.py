"""The Spark drivers' class archive (`percolate.io.jvm_archive`): keyed by what makes it valid,
built once, never in the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from percolate.core import tuning
from percolate.io import jvm_archive


def _fake_java(root: Path, exit_code: int = 1) -> Path:
    """A JAVA_HOME whose java records each start and exits with `exit_code`."""
    java = root / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho started >> {root / 'starts.log'}\nexit {exit_code}\n")
    java.chmod(0o755)
    return root


def test_the_key_changes_with_the_class_path_the_jvm_and_the_options(tmp_path):
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "spark-core.jar").write_bytes(b"x" * 10)
    java = _fake_java(tmp_path / "jdk") / "bin" / "java"
    key = jvm_archive.archive_key(jars, java)
    assert key == jvm_archive.archive_key(jars, java)
    (jars / "postgresql.jar").write_bytes(b"y")  # what infra/postgres.sh start links there
    with_pg = jvm_archive.archive_key(jars, java)
    assert with_pg != key
    (jars / "postgresql.jar").write_bytes(b"yy")  # another version of the same jar
    assert jvm_archive.archive_key(jars, java) not in (key, with_pg)
    assert jvm_archive.archive_key(jars, java, options="-XX:+UseG1GC") != jvm_archive.archive_key(jars, java)
    other_java = _fake_java(tmp_path / "jdk2") / "bin" / "java"
    assert jvm_archive.archive_key(jars, other_java) != jvm_archive.archive_key(jars, java)
    assert jvm_archive.archive_key(tmp_path / "no-jars", java) is None


def test_drivers_get_the_archive_only_where_one_was_built(tmp_path, monkeypatch):
    monkeypatch.setenv(jvm_archive.ENV_DIR, str(tmp_path))
    monkeypatch.delenv(jvm_archive.ENV_SWITCH, raising=False)
    base = tuning.DRIVER_JAVA_OPTIONS
    assert jvm_archive.java_options() == base
    assert jvm_archive.with_archive(tuning.submit_confs()) == tuning.submit_confs()
    path = jvm_archive.archive_path(jvm_archive.archive_key())
    path.write_bytes(b"an archive")
    assert jvm_archive.java_options() == f"{base} -XX:SharedArchiveFile={path}"
    confs = jvm_archive.with_archive(tuning.submit_confs())
    assert confs["spark.driver.extraJavaOptions"] == f"{base} -XX:SharedArchiveFile={path}"
    assert confs["spark.driver.memory"] == tuning.DRIVER_MEMORY
    monkeypatch.setenv(jvm_archive.ENV_SWITCH, "0")
    assert jvm_archive.java_options() == base
    assert jvm_archive.ensure() is None


def test_a_failed_build_leaves_drivers_as_they_were_and_is_not_retried(tmp_path, monkeypatch):
    jdk = _fake_java(tmp_path / "jdk")  # spark-submit's launcher fails at once
    monkeypatch.setenv("JAVA_HOME", str(jdk))
    monkeypatch.setenv(jvm_archive.ENV_DIR, str(tmp_path / "archives"))
    monkeypatch.delenv(jvm_archive.ENV_SWITCH, raising=False)
    assert jvm_archive.ensure(timeout_s=60) is None
    starts = (jdk / "starts.log").read_text().count("started")
    assert starts >= 1
    key = jvm_archive.archive_key()
    assert jvm_archive.archive_path(key).with_suffix(".failed").exists()
    assert not list((tmp_path / "archives").glob("*.jsa*"))  # no partial archive left behind
    assert jvm_archive.ensure(timeout_s=60) is None
    assert (jdk / "starts.log").read_text().count("started") == starts  # not tried again
    assert jvm_archive.java_options() == tuning.DRIVER_JAVA_OPTIONS
    marker = jvm_archive.archive_path(key).with_suffix(".failed")
    old = marker.stat().st_mtime - jvm_archive.RETRY_AFTER_S - 1
    os.utime(marker, (old, old))  # a day later: tried again
    assert jvm_archive.ensure(timeout_s=60) is None
    assert (jdk / "starts.log").read_text().count("started") > starts


def test_every_spark_submit_passes_the_driver_options_with_the_archive(settings):
    from workflows.launch import spark_submit_cmd

    cmd = spark_submit_cmd(settings, "publish", ["--date", "2026-11-20"])
    confs = {cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--conf"}
    assert f"spark.driver.extraJavaOptions={jvm_archive.java_options()}" in confs
    assert f"spark.driver.memory={tuning.DRIVER_MEMORY}" in confs


@pytest.mark.integration
def test_a_driver_maps_spark_classes_from_the_archive(tmp_path, monkeypatch):
    # `make setup` built it; where a test linked PostgreSQL's driver since, this builds another
    monkeypatch.delenv(jvm_archive.ENV_SWITCH, raising=False)
    monkeypatch.delenv(jvm_archive.ENV_DIR, raising=False)
    path = jvm_archive.ensure()
    assert path is not None and path.is_file(), "the class archive could not be built"
    app = tmp_path / "app.py"
    app.write_text("from pyspark.sql import SparkSession\n"
                   "s = SparkSession.builder.getOrCreate()\nassert s.range(3).count() == 3\ns.stop()\n")
    log = tmp_path / "classes.log"
    options = f"{jvm_archive.java_options()} -Xlog:class+load=info:file={log}"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1")
    subprocess.run([str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
                    "--conf", "spark.ui.enabled=false", "--conf", f"spark.driver.extraJavaOptions={options}",
                    str(app)], env=env, check=True, capture_output=True, timeout=300)
    lines = log.read_text().splitlines()
    shared = sum("source: shared objects file (top)" in line for line in lines)
    from_jars = sum("source: file:" in line and "/jars/" in line for line in lines)
    assert shared > 5000, (shared, from_jars)  # Spark's own classes, from the archive's top layer
    assert from_jars < shared / 4, (shared, from_jars)


@pytest.mark.airflow
def test_the_nightly_operator_builds_and_passes_the_archive_when_its_task_runs(tmp_path, monkeypatch):
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    from percolate.spark_operator import GuardedSparkSubmitOperator

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[1]"}')
    monkeypatch.setenv(jvm_archive.ENV_DIR, str(tmp_path))
    monkeypatch.delenv(jvm_archive.ENV_SWITCH, raising=False)
    built = []

    def build(key, base, timeout_s):  # what a successful build leaves (the real one: the test above)
        built.append(base)
        jvm_archive.archive_path(key).write_bytes(b"an archive")
        return jvm_archive.archive_path(key)

    monkeypatch.setattr(jvm_archive, "_build", build)
    commands = []
    monkeypatch.setattr(SparkSubmitHook, "submit",
                        lambda hook, application="", **kw: commands.append(hook._build_spark_submit_command(application)))
    op = GuardedSparkSubmitOperator(task_id="t", conn_id="spark_default", application="job.py",
                                    conf=tuning.submit_confs())
    for _ in range(2):
        op._get_hook().submit("job.py")
    assert built == [tuning.DRIVER_JAVA_OPTIONS]  # once: the second task found it
    path = jvm_archive.archive_path(jvm_archive.archive_key())
    expected = f"spark.driver.extraJavaOptions={tuning.DRIVER_JAVA_OPTIONS} -XX:SharedArchiveFile={path}"
    assert all(expected in cmd for cmd in commands), commands
