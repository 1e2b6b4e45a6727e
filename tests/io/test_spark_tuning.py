"""The session factory applies the measured settings of `percolate.core.tuning`."""

from __future__ import annotations

import pytest

from percolate.core import tuning
from percolate.io.spark import spark_conf


def test_session_conf_takes_every_tuned_setting_from_one_place(settings):
    conf = spark_conf(settings)
    assert conf["spark.sql.execution.arrow.maxRecordsPerBatch"] == str(tuning.ARROW_MAX_RECORDS_PER_BATCH)
    assert conf["spark.python.worker.reuse"] == "true"
    assert {k: conf[k] for k in tuning.spark_confs()} == tuning.spark_confs()


def test_arrow_batches_hold_whole_forward_batches():
    # scores do not depend on the Arrow batch size only while it splits into whole forward batches
    assert tuning.ARROW_MAX_RECORDS_PER_BATCH % tuning.PREFILTER_FORWARD_BATCH == 0
    assert tuning.HEAVY_CHUNK % tuning.HEAVY_FORWARD_BATCH == 0
    assert tuning.TORCH_THREADS == 1


@pytest.mark.spark
def test_live_session_runs_with_the_tuned_settings(spark):
    assert spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch") == str(tuning.ARROW_MAX_RECORDS_PER_BATCH)
    assert spark.sparkContext.getConf().get("spark.python.worker.reuse") == "true"


@pytest.mark.spark
def test_the_session_jvm_runs_with_the_short_lived_driver_options(spark):
    # set on the builder, so they reach the JVM this process starts (tuning.DRIVER_JAVA_OPTIONS)
    jvm_args = list(spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
                    .getInputArguments())
    assert set(tuning.DRIVER_JAVA_OPTIONS.split()) <= set(jvm_args), jvm_args
# (every spark-submit's driver options, with the class archive: tests/io/test_jvm_archive.py)
