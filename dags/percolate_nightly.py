"""Nightly batch prediction: one day of stored calls in, warehouse tables out."""

from __future__ import annotations

from datetime import timedelta
from importlib.util import find_spec

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, chain, dag, task

from percolate.core.tuning import submit_confs  # driver memory and JVM options, measured (docs/tuning.md)
from percolate.spark_operator import GuardedSparkSubmitOperator  # spark-submit stops when its task dies

DOC = """
### Percolate nightly

Processes **exactly the partition of the run's logical date** (`{{ ds }}`): the scheduled run
after midnight processes the day that just ended (its data interval).

0. `plan` - with the `dry_run` param, prints the date's estimate (videos, hours, sampled and
   heavy-model frames, CPU and cost: `percolate backfill --dry-run`) and skips every other
   task: nothing is written, no lease is taken.
1. `check_inputs` - the day's manifest exists, names at least one video, and passes its
   expectation suite.
2. `resolve_models` - pins the registry aliases (default `production`) to versions, so every
   stage of this run uses the same models even if an alias moves meanwhile; a registry
   without a `production` model gets the models shipped in `models/shipped/`. It refuses a
   model whose stored file no longer matches its sha256 or whose spec is out of bounds, and a
   `--crop` heavy model paired with a prefilter without a location map (`models.admission`).
2b. `budget` - estimates the day's cost from its manifest and the trailing runs' metrics
   (`percolate.budget`); over the `budget_usd` param it fails the run before any Spark job
   (`on_over_budget` = `refuse`) or picks the highest rate of 1, 0.5, 0.25 frames/s that fits
   (`degrade`); the sampler runs at the rate it picks, and `pipeline_runs` records the plan.
3. `sample_frames` (Spark) - decodes each stored video in the executors, keeps N frames per
   second of presentation time; each decode runs in a confined child process with a memory
   cap, a CPU-time limit and a frame cap (`PERCOLATE_DECODE_*`), and unusable videos get a
   reason code (the `quarantine` table) instead of failing the run. Faults of the
   infrastructure (the object store, the disk, fork) fail the task, which retries.
   The same task scores every frame with the prefilter, a tiny high-recall CNN, as soon as its
   video is sampled, and writes the prefilter's stage too: its scores, and the frames that
   passed with their JPEGs (the fused hand-over: no second Spark job reads every JPEG again,
   docs/cost.md).
3b. `validate_frames` - the hand-over's suites, with the accounting: every manifest row has
   exactly one outcome. A quarantined share far above the trailing days' fails the run or
   marks it `partial` in `pipeline_runs` (`PERCOLATE_ON_QUARANTINE_SPIKE`).
4. `validate_scores` - the prefilter's scores, before the heavy model reads its survivors.
5. `heavy` (Spark) - a MobileNet-class model classifies only the frames that passed.
6. `publish` (Spark) - writes the rows of `frame_predictions`, `user_brand_daily`, `quarantine`,
   `calls` and `audit_frames` (a random sample of the night's frames set aside for people to
   label) to a fresh location, validates them there and checks drift against the trailing 7
   days (write, audit), then makes them visible in one commit (`pipeline_runs`, which also
   gets the prefilter's recall estimated from the labelled audit frames of the days before).
7. `report` - logs the funnel, cost, warnings and the data docs location, and releases the
   date's lease.

One run writes a date at a time: `check_inputs` takes the date's lease (a second run of the
date fails there, naming the holder), the publish checks it before its commit, and the lease
is released at the end or when the run fails.

Between the Spark jobs, `validate_*` tasks run the Great Expectations suites of
`expectations/` on each hand-over: a critical failure fails the task, naming the
expectation and the offending values; warnings are recorded in `pipeline_runs`.

Spark jobs go through the `spark_default` connection (`local[*,4]` on the embedded default: a
failed Spark task is retried as on a cluster).
Rerunning a date replaces that date only. Params pick other model versions or aliases,
the sampler's frames per second and per-video decode time limit (default: the environment's
`PERCOLATE_SAMPLE_FPS`, `PERCOLATE_DECODE_TIME_LIMIT_S`), and a dry run.
"""

JOB_ARGS = ["--date", "{{ ds }}", "--run-id", "{{ run_id }}"]
WAREHOUSE = [Asset(f"percolate://warehouse/{t}") for t in
             ("frame_predictions", "user_brand_daily", "quarantine", "audit_frames", "pipeline_runs")]


def on_run_failed(context) -> None:
    """A failed run records its outcome and gives up its date's lease, so another run (or its
    rerun) can write the date."""
    from percolate.core.settings import Settings
    from percolate.io.lease import open_leases

    from percolate.core.layout import record_outcome

    run, settings = context["dag_run"], Settings.from_env()
    date = run.logical_date.strftime("%Y-%m-%d")
    record_outcome(settings.reports_dir, date, "failed", run.run_id, str(context.get("reason") or "a task failed"))
    open_leases(settings).release(date, run.run_id)


def job(name: str) -> str:
    """Path of a Spark job's file, found without importing it."""
    return find_spec(f"jobs.{name}").origin


@dag(
    dag_id="percolate_nightly",
    # a run covers the day that just ended: the run after midnight of D+1 has the data interval
    # [D, D+1) and logical date D (`ds`), the date of the calls it processes (Airflow 3's plain
    # "@daily" would give the run after midnight its own, empty, date)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # the embedded Derby metastore takes one writer at a time
    doc_md=DOC,
    tags=["percolate", "nightly", "batch-prediction"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "owner": "percolate"},
    on_failure_callback=on_run_failed,
    params={
        "prefilter_model": Param("production", type="string", description="alias or version of the prefilter"),
        "heavy_model": Param("production", type="string", description="alias or version of the heavy model"),
        "drift_reference_before": Param(
            "", type="string", description="compare drift with the published days before this date (default: the "
                                           "run's date); a backfill sets its first date, so its dates do not depend "
                                           "on the order they run in"),
        "sample_fps": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=30,
                            description="frames kept per second of video (default: PERCOLATE_SAMPLE_FPS, 1)"),
        "decode_time_limit_s": Param(None, type=["null", "number"], exclusiveMinimum=0,
                                     description="per-video decode limit in CPU seconds (default: "
                                                 "PERCOLATE_DECODE_TIME_LIMIT_S, 300)"),
        "dry_run": Param(False, type="boolean",
                         description="only print the estimate for the date; write nothing"),
        "budget_usd": Param(None, type=["null", "number"], minimum=0,
                            description="the most the run may cost (USD, estimated before sampling); unset: no limit"),
        "on_over_budget": Param("refuse", type="string", enum=["refuse", "degrade"],
                                description="over budget: fail before any Spark job, or sample at a lower rate"),
    },
)
def percolate_nightly():
    @task.short_circuit(retries=0)
    def plan(ds=None, params=None) -> bool:
        """Go on, or (with `dry_run`) print the date's estimate and skip the rest of the run."""
        if not params.get("dry_run"):
            return True
        import os
        import subprocess
        import sys
        from pathlib import Path

        # the estimate is the CLI's own (`percolate backfill --dry-run`): one implementation,
        # with the run's sampler rate when the trigger sets one
        env = dict(os.environ)
        if params.get("sample_fps"):
            env["PERCOLATE_SAMPLE_FPS"] = str(params["sample_fps"])
        out = subprocess.run([str(Path(sys.executable).parent / "percolate"), "backfill", "--start", ds, "--end", ds,
                              "--dry-run", "--prefilter-model", params["prefilter_model"]],
                             env=env, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"the dry run's estimate failed:\n{out.stderr[-3000:]}")
        print(out.stdout)
        return False

    @task(retries=0)
    def check_inputs(ds=None, run_id=None) -> dict:
        """Fail fast, with a clear message, when the day has nothing (valid) to process."""
        from percolate.core.settings import Settings
        from percolate.handover import check, load
        from percolate.io.stage import open_stage

        from percolate.io.lease import open_leases

        settings = Settings.from_env()
        open_leases(settings).acquire(ds, run_id)  # before anything of the date is written
        open_stage(settings, run_id).clear_reports(ds)
        manifest = load(settings, "manifest", ds)
        if manifest.empty:
            raise ValueError(f"the manifest for {ds} names no video")
        check(settings, "manifest", ds, run_id, data=manifest)
        return {"date": ds, "videos": len(manifest)}

    @task(retries=0)
    def validate_frames(ds=None, run_id=None) -> None:
        """Sampled frames and per-video outcomes pass their suites, every manifest row has one
        outcome, and the quarantined share is not far above the trailing days'."""
        from airflow.sdk.exceptions import AirflowFailException

        from percolate.core.settings import Settings
        from percolate.handover import check
        from percolate.run_status import QuarantineSpike, check_quarantine_share

        settings = Settings.from_env()
        check(settings, "video_outcomes", ds, run_id)
        check(settings, "sampled_frames", ds, run_id)
        try:
            check_quarantine_share(settings, ds, run_id)
        except QuarantineSpike as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(retries=0)
    def validate_scores(ds=None, run_id=None) -> None:
        """Prefilter scores pass their suite."""
        from percolate.core.settings import Settings
        from percolate.handover import check

        check(Settings.from_env(), "prefilter_scores", ds, run_id)

    @task(retries=0)
    def validate_predictions(ds=None, run_id=None, ti=None) -> None:
        """Heavy-model predictions pass their suite (labels from the model's own classes)."""
        from percolate.io.registry import open_registry
        from percolate.core.settings import Settings
        from percolate.handover import check

        settings = Settings.from_env()
        version = ti.xcom_pull(task_ids="resolve_models")["heavy"]
        spec = open_registry(settings).spec("heavy", version)
        check(settings, "heavy_predictions", ds, run_id, class_names=spec["class_names"])

    @task
    def resolve_models(params=None) -> dict:
        """Pin model aliases to versions for the whole run (the shipped models become
        `production` in a registry that has none); refuse, before any Spark job, a model whose
        stored files no longer match their sha256 or whose spec is out of bounds, and a
        cropping heavy model paired with a prefilter without a location map."""
        from airflow.sdk.exceptions import AirflowFailException

        from percolate.io.registry import open_registry
        from models.admission import ModelRefused, admit_pair
        from percolate.core.settings import Settings

        registry = open_registry(Settings.from_env())
        try:
            return admit_pair(registry, params["prefilter_model"], params["heavy_model"])
        except ModelRefused as exc:  # a refused model stays refused: no retries (a registry outage retries)
            raise AirflowFailException(f"model refused: {exc}") from exc

    @task(retries=0)  # like plan and check_inputs: what it reads is the day's data and history
    def budget(ds=None, run_id=None, params=None, ti=None) -> dict:
        """Estimate the day's cost; refuse the run or degrade its sampling rate when over budget."""
        from airflow.sdk.exceptions import AirflowFailException

        from percolate.budget import format_plan, plan_run
        from percolate.core.costing import OverBudgetError
        from percolate.core.settings import Settings

        try:
            plan = plan_run(Settings.from_env(), ds, run_id, requested_fps=params.get("sample_fps"),
                            budget_usd=params.get("budget_usd"),
                            policy=params.get("on_over_budget") or "refuse",
                            models=ti.xcom_pull(task_ids="resolve_models"))
        except OverBudgetError as exc:  # over budget stays over budget: no retries
            raise AirflowFailException(str(exc)) from exc
        print(format_plan(plan))
        return plan

    def spark_job(task_id: str, extra_args: list[str] | None = None, **kwargs) -> GuardedSparkSubmitOperator:
        return GuardedSparkSubmitOperator(
            task_id=task_id,
            conn_id="spark_default",
            application=job(task_id),
            application_args=JOB_ARGS + (extra_args or []),
            name=f"percolate-{task_id}",
            conf=submit_confs(),
            execution_timeout=timedelta(hours=4),
            **kwargs,
        )

    sample = spark_job("sample_frames", ["--fps", "{{ ti.xcom_pull(task_ids='budget')['fps'] }}",
                                         "--time-limit-s", "{{ params.decode_time_limit_s or '' }}",
                                         "--prefilter-version",
                                         "{{ ti.xcom_pull(task_ids='resolve_models')['prefilter'] }}"],
                       doc_md="Decode stored videos; keep N frames/s by timestamp; score each frame with the "
                              "prefilter.")
    heavy = spark_job(
        "heavy", ["--model-version", "{{ ti.xcom_pull(task_ids='resolve_models')['heavy'] }}"],
        doc_md="Classify the prefilter's survivors with the heavy model.")
    publish = spark_job("publish", ["--drift-before", "{{ params.drift_reference_before or ds }}"], outlets=WAREHOUSE,
                        doc_md="Replace the date's partitions of the warehouse tables.")

    @task
    def report(ds=None, run_id=None) -> dict:
        """Log the funnel, CPU time and estimated cost of the run; release the date's lease."""
        import json

        from percolate.core.layout import record_outcome, run_summary_path
        from percolate.core.settings import Settings
        from percolate.io.lease import open_leases
        from percolate.report import format_funnel

        settings = Settings.from_env()
        summary = json.loads(run_summary_path(settings.reports_dir, ds).read_text())
        print(format_funnel(summary))
        record_outcome(settings.reports_dir, ds, summary.get("status") or "success", run_id)
        open_leases(settings).release(ds, run_id)
        return summary

    chain(plan(), check_inputs(), resolve_models(), budget(), sample, validate_frames(), validate_scores(),
          heavy, validate_predictions(), publish, report())


percolate_nightly()
