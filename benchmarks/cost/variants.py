"""The benchmark's variants, each run as a metered command (benchmarks.cost.meter) on a day's
files: the decode limit, the fused floor (decode and prefilter in one process,
`benchmarks.cost.fused_floor`), naive, sampled only, and Percolate (the nightly DAG through
Airflow, `percolate nightly`, as a user runs it)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from benchmarks.cost.meter import run_metered

REPO = Path(__file__).resolve().parents[2]


def bench_env(home: Path, store: str, registry: Path) -> dict[str, str]:
    """The environment of every variant: the benchmark's own home, the day's store, one registry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCOLATE_")}
    env.update({"PERCOLATE_HOME": str(home), "PERCOLATE_STORE": store, "PERCOLATE_REGISTRY": str(registry),
                "PERCOLATE_PROGRESS": "0"})
    for key in ("PERCOLATE_COST_PER_CORE_HOUR", "PERCOLATE_SAMPLE_FPS", "PERCOLATE_DAGS_FOLDER",
                "PERCOLATE_JVM_ARCHIVE", "PERCOLATE_JVM_ARCHIVE_DIR"):  # (the drivers' class archive)
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def settings_of(env: dict[str, str]):
    from percolate.core.settings import Settings

    return Settings.from_env(env)


def day_videos(env: dict[str, str], date: str, calls: list[str] | None = None) -> list[dict]:
    """{call_id, user_id, path} of the day's videos (all, or the listed calls)."""
    from percolate.io.manifest import read_manifest
    from percolate.io.store import open_store

    settings = settings_of(env)
    store = open_store(settings.store_uri)
    rows = read_manifest(store, date)
    return [{"call_id": r["call_id"], "user_id": r["user_id"], "path": str(store.path(r["video_key"]))}
            for r in rows if calls is None or r["call_id"] in calls]


def decode_limit(env: dict[str, str], date: str, logs: Path) -> dict:
    paths = [v["path"] for v in day_videos(env, date)]
    out = logs / f"decode-limit-{date}.json"
    meter = run_metered([sys.executable, "-m", "benchmarks.cost.decode_limit", str(out), *paths], env, REPO,
                        logs / f"decode-limit-{date}.log")
    _check(meter, "the decode limit")
    files = json.loads(out.read_text())["files"]
    return {"meter": meter, "frames_decoded": sum(f["decoded"] for f in files),
            "frames_sampled": sum(f["kept"] for f in files),
            "work_cpu_s": round(sum(f["cpu_s"] for f in files), 3), "modes": sorted({f["mode"] for f in files})}


def fused_floor(env: dict[str, str], date: str, logs: Path, versions: dict[str, str], day_s: float) -> dict:
    """The fused floor on the day's files (`versions`: role -> model version; `day_s`: the day's
    video seconds); each call's kept buckets and prefilter scores, to set beside the nightly run's."""
    settings = settings_of(env)
    videos = day_videos(env, date)
    # the nightly audit draws about `audit_rejected` rejected frames a day: the same share of frames here
    share = min(1.0, settings.audit_rejected / max(day_s * settings.sampler.fps, 1.0))
    out = logs / f"fused-floor-{date}.json"
    meter = run_metered([sys.executable, "-m", "benchmarks.cost.fused_floor", str(out), "--registry",
                         settings.registry_uri, "--version", versions["prefilter"], "--heavy-version",
                         versions["heavy"], "--audit-share", f"{share:.6f}",
                         "--jpeg-quality", str(settings.sampler.jpeg_quality), *[v["path"] for v in videos]],
                        env, REPO, logs / f"fused-floor-{date}.log")
    _check(meter, "the fused floor")
    files = json.loads(out.read_text())["files"]
    call_of = {os.path.basename(v["path"]): v["call_id"] for v in videos}
    return {"meter": meter, "audit_share": share, "frames_sampled": sum(f["kept"] for f in files),
            "work_cpu_s": round(sum(f["cpu_s"] for f in files), 3),
            "passed": sum(f["passed"] for f in files), "audited": sum(f["audited"] for f in files),
            "steps_cpu_s": {k: round(sum(f["steps"][k] for f in files), 3) for k in files[0]["steps"]} if files else {},
            "scores": {call_of[f["file"]]: dict(zip(map(str, f["buckets"]), f["scores"])) for f in files}}


def models_on_everything(env: dict[str, str], date: str, fps: float, calls: list[str] | None, logs: Path,
                         name: str) -> dict:
    """naive (fps 0) or sampled only (fps 1): benchmarks/cost/model_job.py under spark-submit."""
    from percolate.core.tuning import submit_confs
    from percolate.io.jvm_archive import with_archive
    from workflows.launch import bin_dir

    videos = day_videos(env, date, calls)
    spec, out = logs / f"{name}-{date}.videos.json", logs / f"{name}-{date}.result.json"
    spec.write_text(json.dumps(videos))
    settings = settings_of(env)
    confs = [arg for key, value in with_archive(submit_confs()).items() for arg in ("--conf", f"{key}={value}")]
    cmd = [str(bin_dir() / "spark-submit"), "--master", settings.spark_master, "--name", f"percolate-bench-{name}",
           *confs, str(REPO / "benchmarks" / "cost" / "model_job.py"), "--videos", str(spec), "--fps", str(fps),
           "--out", str(out)]
    run_env = dict(env, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   SPARK_LOCAL_IP=env.get("SPARK_LOCAL_IP", "127.0.0.1"))
    settings.home.mkdir(parents=True, exist_ok=True)
    meter = run_metered(cmd, run_env, settings.home, logs / f"{name}-{date}.log")
    _check(meter, name)
    return dict(json.loads(out.read_text()), meter=meter, calls=[v["call_id"] for v in videos])


def prepare_home(env: dict[str, str]) -> None:
    """Create the fresh home's Airflow database before any metered run: `airflow db migrate`
    (about 4.7 CPU-s and 6 s here) is once per home, not a cost of every run; metered inside the
    first run of a pass it was counted in the tiny day's fixed cost and so taken off every day's
    marginal figure (2.2 CPU-s per video-hour on the benchmark day, docs/cost.md)."""
    from workflows.launch import base_env, ensure_airflow_db

    settings = settings_of(env)
    settings.home.mkdir(parents=True, exist_ok=True)
    ensure_airflow_db(settings, base_env(settings))


def percolate(env: dict[str, str], date: str, logs: Path) -> dict:
    """The nightly DAG through Airflow; its run summary (CPU per job from the jobs' own metering),
    with the JPEGs the sampler kept (`frames_kept`, from its stage metrics)."""
    from percolate.core.layout import SAMPLE_FRAMES, run_summary_path
    from percolate.io.stage import open_stage

    settings = settings_of(env)
    # what `percolate nightly --date D` runs: `airflow dags test percolate_nightly D` (workflows.launch)
    cmd = [sys.executable, "-c", "import sys; from percolate.core.settings import Settings; from workflows.launch "
           "import run_nightly; run_nightly(Settings.from_env(), sys.argv[1], progress=False)", date]
    meter = run_metered(cmd, env, REPO, logs / f"percolate-{date}.log")
    _check(meter, "the nightly run")
    summary = json.loads(run_summary_path(settings.reports_dir, date).read_text())
    sampled = open_stage(settings, summary["run_id"]).read_metrics(SAMPLE_FRAMES, date)
    summary["frames_kept"] = sampled.get("frames_kept", summary.get("sampled_frames"))
    summary["audit_keep_rate"] = sampled.get("audit_keep_rate")
    return {"meter": meter, "summary": summary}


def _check(meter: dict, what: str) -> None:
    if meter["rc"] != 0:
        raise RuntimeError(f"{what} failed (exit {meter['rc']}); log {meter['log']}")


def subset(calls: list[str], share: float, seed: int, at_least: int = 1) -> list[str]:
    """A seeded share of the calls (at least `at_least`), for the variants scaled per video-second."""
    import numpy as np

    n = min(len(calls), max(at_least, math.ceil(share * len(calls))))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(sorted(calls), n, replace=False).tolist())
