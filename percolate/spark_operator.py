"""`SparkSubmitOperator` whose spark-submit never outlives its Airflow task.

The provider's operator runs spark-submit as a plain child of the task process; a task killed
without running its `on_kill` (SIGKILL at the timeout, the OOM killer, a lost worker process)
leaves spark-submit, its JVM and its Python processes running beside the retry. This operator
launches the same command through `percolate.orphan_guard`, which stops that whole process tree
when the task process dies, and asks the guard (SIGTERM) to stop it in `on_kill` before the
provider's own clean-up (which SIGKILLs the process it started: the guard). Before it submits,
it adds the drivers' class archive to the JVM options (`percolate.io.jvm_archive`), building it
first where this JVM and class path have none.

Only the DAG files import this module (it imports Airflow's Spark provider).
"""

from __future__ import annotations

import subprocess
import sys

from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

GRACE_S = 10.0  # spark-submit's time to stop its application after SIGTERM


class GuardedSparkSubmitHook(SparkSubmitHook):
    """`SparkSubmitHook` that runs the connection's spark-submit binary under the guard."""

    def _get_spark_binary_path(self) -> list[str]:
        return [sys.executable, "-m", "percolate.orphan_guard", "--grace-s", str(GRACE_S), "--",
                *super()._get_spark_binary_path()]

    def submit(self, application: str = "", **kwargs):
        from percolate.core.tuning import DRIVER_JAVA_OPTIONS
        from percolate.io import jvm_archive

        # the drivers' class archive: built once for this JVM and class path, then used by
        # every driver (percolate.io.jvm_archive); decided here, when the task runs
        jvm_archive.ensure(self._conf.get("spark.driver.extraJavaOptions", DRIVER_JAVA_OPTIONS))
        self._conf = jvm_archive.with_archive(self._conf)
        return super().submit(application, **kwargs)

    def on_kill(self) -> None:
        proc = getattr(self, "_submit_sp", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()  # the guard stops spark-submit's whole tree, then exits
            try:
                proc.wait(timeout=GRACE_S + 10)
            except subprocess.TimeoutExpired:
                pass
        super().on_kill()


class GuardedSparkSubmitOperator(SparkSubmitOperator):
    """`SparkSubmitOperator` (same arguments) whose spark-submit stops when its task dies."""

    def _get_hook(self) -> SparkSubmitHook:
        hook = super()._get_hook()
        hook.__class__ = GuardedSparkSubmitHook  # the provider's own construction, our launch
        return hook
