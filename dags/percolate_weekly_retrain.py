"""Weekly retraining from people's labels: a gated champion/challenger."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, chain, dag, task

DOC = """
### Percolate weekly retrain

As of the run's logical date (`{{ ds }}`), reading only the labels known by then (point in
time), `workflows.retrain` (also `percolate retrain --date D`):

1. `retrain` - assembles the last `weeks` weeks' labelled frames with Spark, checks the
   training set (label agreement, class balance, conflicting labels, no leakage into the
   evaluation days, the `training_data` suite), fine-tunes a challenger from `production` on
   the base data plus the feedback, recalibrates it, registers it as `challenger`, evaluates
   champion and challenger end to end on the same held-out days, shadow-scores the latest
   nightly date, and moves `production` only when every gate of `models/gates.json` (or
   `PERCOLATE_GATES`) passes. The decision goes to `model_evaluations` and an HTML report.
   A training set that fails its gates stops before training.
2. `report` - prints the decision and where its report is.

With `dry_run` it stops after the training set's checks: nothing is trained or moved.
Not retried: a rerun trains (and registers) another challenger; rerun by hand once the cause
is fixed.
"""


@dag(
    dag_id="percolate_weekly_retrain",
    schedule="0 6 * * 1",  # Mondays 06:00 UTC: after the Sunday nightly run
    start_date=pendulum.datetime(2026, 1, 5, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["percolate", "weekly", "training"],
    default_args={"retries": 0, "owner": "percolate"},
    params={
        "weeks": Param(4, type="integer", minimum=1, maximum=52, description="weeks of labels to learn from"),
        "seed": Param(11, type="integer", description="training seed"),
        "dry_run": Param(False, type="boolean", description="check the training set only; train and move nothing"),
        "plan": Param({}, type="object", description='overrides of workflows.retrain.RetrainPlan, e.g. '
                                                    '{"preset": "tiny", "holdout_dates": ["2026-02-01"]}'),
    },
)
def percolate_weekly_retrain():
    @task(execution_timeout=timedelta(hours=12))
    def retrain(ds=None, params=None) -> None:
        """The whole retrain (`percolate retrain --here`: workflows.retrain); its result is kept
        beside the reports for `report` and the command line."""
        import json
        import subprocess
        import sys
        from pathlib import Path

        cmd = [str(Path(sys.executable).parent / "percolate"), "retrain", "--here", "--date", ds,
               "--weeks", str(params["weeks"]), "--seed", str(params["seed"]),
               "--plan-json", json.dumps(params.get("plan") or {})] + (["--dry-run"] if params.get("dry_run") else [])
        done = subprocess.run(cmd)  # its output (progress, the decision) goes to the task's log
        if done.returncode != 0:
            raise RuntimeError(f"`percolate retrain --here` exited with {done.returncode}: see the lines above")

    @task
    def report(ds=None) -> None:
        """Print the decision (the result `retrain` kept)."""
        import json

        from percolate.core.layout import retrain_result_path
        from percolate.core.settings import Settings

        out = json.loads(retrain_result_path(Settings.from_env().reports_dir, ds).read_text())
        print(f"promoted: {out.get('promoted')}; decision: {out.get('decision')}; report: {out.get('report')}")

    chain(retrain(), report())


percolate_weekly_retrain()
