"""benchmarks/bench_cost.py (`make bench`): the meter, the fixed/marginal split, and a smoke
run of every variant on a day of a few seconds (no timing assertions)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

KEYS = ("percolate_video_hours_per_core_hour", "decode_limit_video_hours_per_core_hour", "ratio_to_decode_limit",
        "naive_cpu_ratio_gop1s", "naive_cpu_ratio_gop10s", "user_day_precision", "user_day_recall",
        "sampled_only_user_day_recall")


def test_the_meter_counts_orphaned_grandchildren(tmp_path):
    """A grandchild that outlives its parent (re-parented, never waited for by it) still counts."""
    from benchmarks.cost.meter import run_metered

    burn = "import time; t = time.process_time(); exec('while time.process_time() - t < 0.6: pass')"
    script = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {burn!r}])"
    start = time.monotonic()
    meter = run_metered([sys.executable, "-c", script], dict(os.environ), tmp_path, tmp_path / "log.txt")
    assert meter["rc"] == 0
    assert meter["cpu_s"] >= 0.6
    assert meter["wall_s"] <= time.monotonic() - start


def test_a_worker_orphaned_by_its_sigchld_ignoring_parent_counts_once(tmp_path):
    """PySpark's case: the parent ignores SIGCHLD (so the meter samples its child from /proc),
    then dies first; the child is re-parented to the launcher, which reaps it, so its CPU is in
    the launcher's RUSAGE_CHILDREN and must not be added again from the samples."""
    from benchmarks.cost.meter import run_metered

    script = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
        "if os.fork() == 0:\n"
        "    t = time.process_time()\n"
        "    while time.process_time() - t < 0.8: pass\n"  # sampled while its parent ignores SIGCHLD
        "    time.sleep(0.6)\n"  # the parent exits meanwhile: re-parented to the launcher
        "    os._exit(0)\n"
        "time.sleep(1.2)\n"
    )
    meter = run_metered([sys.executable, "-c", script], dict(os.environ), tmp_path, tmp_path / "log.txt")
    assert meter["rc"] == 0
    assert meter["reaped_after_orphaning_cpu_s"] >= 0.4  # it was sampled, then reaped by the launcher
    assert 0.75 <= meter["cpu_s"] < 1.3, meter  # once (0.8 and the interpreters' start), not twice (1.6+)


def test_fixed_and_marginal_costs_come_from_two_day_sizes():
    from benchmarks.cost.figures import split_fixed_marginal

    def run(video_s, jobs, tree):
        return {"summary": {"video_seconds": video_s, "cpu_s_sample_frames": jobs, "cpu_s_prefilter": 0,
                            "cpu_s_heavy": 0, "cpu_s_publish": 0}, "meter": {"cpu_s": tree}}

    # fixed 100 CPU-s per run (80 of them in the jobs), 40 CPU-s per video-hour, all of it sampling
    split = split_fixed_marginal(run(360, 84, 104), run(7200, 160, 180))
    assert split["marginal_cpu_s_per_video_hour"] == pytest.approx(40)
    assert split["fixed_cpu_s_per_run"] == pytest.approx(100)
    assert split["marginal_by_stage"]["sample_frames"] == pytest.approx(40)
    assert split["fixed_by_stage"]["airflow"] == pytest.approx(20)


def test_the_headline_encoding_runs_most():
    from benchmarks.cost.run import BenchPlan

    plan = BenchPlan()
    assert [plan.repeats_of(e) for e in plan.encodings] == [3, 2]
    assert BenchPlan(repeats=1).repeats_of("gop10s") == 1  # never more than `repeats`
    # gop10s in the last two passes: the last pass, which the scoring reads, has both encodings
    assert plan.passes() == [["gop1s"], ["gop1s", "gop10s"], ["gop1s", "gop10s"]]
    assert BenchPlan(repeats=1).passes() == [["gop1s", "gop10s"]]
    assert BenchPlan(repeats=4, later_repeats=1).passes()[-1] == ["gop1s", "gop10s"]


def test_repeated_runs_keep_the_median_and_bound_the_marginal_figure():
    from benchmarks.cost.figures import marginal_range
    from benchmarks.cost.run import median_run

    def run(video_s, tree):
        return {"summary": {"video_seconds": video_s, "cpu_s_sample_frames": tree / 2}, "meter": {"cpu_s": tree}}

    days = [run(7200, c) for c in (190, 170, 180)]
    chosen = median_run(days)
    assert chosen["meter"]["cpu_s"] == 180 and chosen["repeats_cpu_s"] == [190, 170, 180]
    assert [r["cpu_s_sample_frames"] for r in chosen["repeats_stage_cpu_s"]] == [95, 85, 90]
    assert median_run([run(7200, 5), run(7200, 3)])["meter"]["cpu_s"] == 3  # even: the lower one
    assert median_run([run(7200, 5), run(7200, 3)], even="higher")["meter"]["cpu_s"] == 5  # or as asked
    with pytest.raises(ValueError, match="even"):
        median_run(days, even="middle")
    tiny = median_run([run(360, c) for c in (100, 104, 102)])
    # the cheapest day against the dearest tiny day and the reverse, over 1.9 video-hours
    assert marginal_range(tiny, chosen) == pytest.approx([(170 - 104) / 1.9, (190 - 100) / 1.9], abs=0.01)
    assert marginal_range(run(360, 100), run(7200, 180)) is None  # one run each: no spread to show
    with pytest.raises(ValueError):
        median_run([])


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.airflow
@pytest.mark.integration
def test_smoke_run_writes_every_variant_and_the_report(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCOLATE_")}
    env.update(PERCOLATE_HOME=str(tmp_path / "var"), PERCOLATE_PROGRESS="0")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_cost.py"), "--smoke"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    reports = tmp_path / "var" / "reports" / "bench"
    latest = json.loads((reports / "latest.json").read_text())
    assert set(KEYS) <= set(latest)
    gop1s = latest["encodings"]["gop1s"]
    assert {"decode_limit", "fused_floor", "naive", "sampled_only", "percolate"} <= set(gop1s)
    # the fused floor decodes the nightly run's frames (same rule, same buckets) and scores each
    agreement = gop1s["fused_floor"]["agreement_with_nightly"]
    assert agreement["frames"] == agreement["nightly_frames"] == gop1s["percolate"]["sampled_frames"]
    assert gop1s["fused_floor"]["frames_sampled"] == agreement["frames"]
    assert "fused_floor_ratio_to_decode_limit" in latest
    assert gop1s["naive"]["frames"] > gop1s["percolate"]["sampled_frames"] > 0
    assert all(latest["encodings"][e]["percolate"]["cpu_s"] > 0 for e in ("gop1s", "gop10s"))
    assert "<svg" in (reports / "latest.html").read_text()
    assert "naive" in out.stdout and "decode limit" in out.stdout


@pytest.mark.slow
def test_the_cascade_runs_inside_the_decode_sandbox_with_the_same_scores(tmp_path):
    """`fused_floor --confined`: both models run in a child confined as the sampler's decode
    child is (memory limits, Landlock, seccomp), and score every frame as they do unconfined."""
    from benchmarks.cost.fused_floor import run
    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.io.store import open_store
    from tests.media import make_video

    video = tmp_path / "call.mp4"
    make_video(video, n=150, w=320, h=180, rate=30, gop=30)
    versions = ensure_production(ModelRegistry(open_store(str(tmp_path / "registry"))))
    args = ([str(video)], str(tmp_path / "registry"), (versions["prefilter"], versions["heavy"]), 1.0, 90, 0.5, 1)
    plain, confined = run(*args)[0], run(*args, confined=True)[0]
    assert confined["confined"] and confined["child_cpu_s"] > 0
    assert confined["kept"] == plain["kept"] == 5 and confined["buckets"] == plain["buckets"]
    assert confined["scores"] == pytest.approx(plain["scores"], abs=1e-6)
    assert confined["audited"] + confined["passed"] == plain["audited"] + plain["passed"] > 0


@pytest.mark.slow
def test_the_worker_profile_runs_the_nightly_sampling_task_and_splits_its_cpu(tmp_path, monkeypatch):
    """`benchmarks.cost.worker_profile`: the sampling task's partition function in-process, the
    worker's CPU and the decode children's, the prefilter's share of theirs apart."""
    from benchmarks.cost.worker_profile import profile
    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.core.layout import video_key
    from percolate.io.manifest import write_manifest
    from percolate.io.store import open_store
    from tests.media import make_video

    store = open_store(str(tmp_path / "store"))
    video = tmp_path / "call.mp4"
    make_video(video, n=150, w=320, h=180, rate=30, gop=30)
    key = video_key("2026-12-01", "c1")
    store.put_file(key, video)
    write_manifest(store, "2026-12-01", [{"call_id": "c1", "user_id": "u1", "video_key": key,
                                          "size_bytes": video.stat().st_size}])
    version = ensure_production(ModelRegistry(store))["prefilter"]
    for name in ("PERCOLATE_HOME", "PERCOLATE_STORE", "PERCOLATE_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PERCOLATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERCOLATE_STORE", str(tmp_path / "store"))
    result = profile("2026-12-01", 5, version, top=3)
    assert result["calls"] == 1 and result["frames"] == 5
    assert 0 < result["prefilter_scoring_s"] < result["decode_children_cpu_s"]


def test_variants_run_in_their_own_home_and_keep_the_switches_a_measurement_sets(tmp_path, monkeypatch):
    from benchmarks.cost.variants import bench_env

    monkeypatch.setenv("PERCOLATE_STAGE", "/somewhere/else")
    monkeypatch.setenv("PERCOLATE_JVM_ARCHIVE", "0")  # e.g. the fixed cost without the drivers' class archive
    env = bench_env(tmp_path / "home", str(tmp_path / "store"), tmp_path / "registry")
    assert env["PERCOLATE_HOME"] == str(tmp_path / "home") and "PERCOLATE_STAGE" not in env
    assert env["PERCOLATE_JVM_ARCHIVE"] == "0"
