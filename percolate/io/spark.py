"""The one SparkSession factory. Every job and test gets its session here."""

from __future__ import annotations

import os
import sys
from urllib.parse import unquote, urlsplit
from typing import TYPE_CHECKING

from percolate.core import tuning
from percolate.core.settings import Settings
from percolate.io.jvm_archive import java_options

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_conf(settings: Settings) -> dict[str, str]:
    """Session settings shared by jobs, tests and `percolate query`.

    The Hive metastore (Spark's built-in Hive 2.3 client) is embedded Derby under
    `settings.metastore_dir` (one JVM at a time), or the PostgreSQL database that
    `settings.metastore_url` names (shared by every Spark application; `infra/postgres.sh`).
    """
    return {
        "spark.sql.warehouse.dir": str(settings.warehouse_dir),
        **metastore_conf(settings),
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.sources.partitionOverwriteMode": "static",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Arrow batch size and Python worker reuse: measured, in percolate.core.tuning.
        **tuning.spark_confs(),
        "spark.driver.memory": "2g",
    }


def metastore_conf(settings: Settings, url: str | None = None) -> dict[str, str]:
    """The javax.jdo options of the metastore: Derby under `metastore_dir`, or PostgreSQL
    (`settings.metastore_url`, or `url`: the read-only role's, for the Thrift server).

    Derby's schema is created on first use. PostgreSQL's is created once, up front
    (`percolate.io.metastore`: lazy creation deadlocks there), so creation is off here; the
    schema check is off because that schema is made from the client's own mapping.
    """
    url = settings.metastore_url if url is None else url
    if not url:
        metastore = settings.metastore_dir / "metastore_db"
        return {"spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true"}
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
        raise ValueError(f"a metastore URL (PERCOLATE_METASTORE_URL) must look like postgresql://user:password@host:port/database, "
                         f"got {parts.scheme}://{parts.hostname}{parts.path}")
    return {
        "spark.hadoop.javax.jdo.option.ConnectionURL":
            f"jdbc:postgresql://{parts.hostname}:{parts.port or 5432}/{parts.path.strip('/')}",
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "spark.hadoop.javax.jdo.option.ConnectionUserName": unquote(parts.username or ""),
        "spark.hadoop.javax.jdo.option.ConnectionPassword": unquote(parts.password or ""),
        "spark.hadoop.datanucleus.schema.autoCreateAll": "false",
        "spark.hadoop.hive.metastore.schema.verification": "false",
    }


def get_spark(app_name: str, settings: Settings, master: str | None = None) -> "SparkSession":
    """A SparkSession with Hive support on the configured warehouse.

    `master=None` leaves the master to spark-submit (the Airflow connection decides);
    tests and local tools pass e.g. "local[2]".
    """
    from pyspark.sql import SparkSession

    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    settings.metastore_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    # the JVM options of a short-lived driver (tuning.DRIVER_JAVA_OPTIONS, and the class archive
    # where one has been built: percolate.io.jvm_archive): applied where this process starts the
    # JVM itself; under spark-submit the JVM is already running with them
    builder = builder.config("spark.driver.extraJavaOptions", java_options())
    # Python workers run this interpreter (the project's virtualenv) unless told otherwise;
    # PySpark reads the variable when the context starts.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
