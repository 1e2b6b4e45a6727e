"""The one SparkSession factory. Every job and test gets its session here."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from percolate.core.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_conf(settings: Settings) -> dict[str, str]:
    """Session settings shared by jobs, tests and `percolate query`.

    The Hive metastore is embedded Derby under `settings.metastore_dir` (one JVM at a time);
    a PostgreSQL metastore is a matter of changing the javax.jdo options here.
    """
    metastore = settings.metastore_dir / "metastore_db"
    return {
        "spark.sql.warehouse.dir": str(settings.warehouse_dir),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.sources.partitionOverwriteMode": "static",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Frames carry ~30 KB of JPEG each: small Arrow batches keep worker memory flat.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "64",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.python.worker.reuse": "true",
        "spark.driver.memory": "2g",
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
    # Python workers run this interpreter (the project's virtualenv) unless told otherwise;
    # PySpark reads the variable when the context starts.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
