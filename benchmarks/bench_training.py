"""Benchmark where weekly retraining should train its ensemble members: in the driver, one Spark
task per member, or DDP under Spark's TorchDistributor.

    python benchmarks/bench_training.py [--frames 800] [--epochs 2] [--members 2] [--repeats 3] [--json]

The work is the same three ways: `--members` heavy models (`models.fit.train_heavy`'s
defaults, seeds 0, 1, ...) for `--epochs` epochs over `--frames` labelled synthetic frames
(tests/models/_models_testutil.frames_df, decoded once up front like `fit_models` does):
- driver: one after another in this process, torch threads 2 (what `percolate train` does);
- tasks: one Spark task per member on local[2], torch threads 1 per task, weights back as
  safetensors bytes;
- ddp: TorchDistributor(num_processes=2, local_mode=True) runs DDP (gloo) on one member at a
  time, torch threads 1 per process, each rank taking half of every batch (the loop mirrors
  `models.fit._run_epochs`: same sampling, augmentation, AdamW and one-cycle schedule).
Each way runs `--repeats` times, interleaved so load from other processes hits all of them;
it prints the fastest wall time (and the median), that run's CPU seconds (this process, its
reaped children, Spark's JVM and the tasks' Python workers), throughput (training samples /
wall second) and the speedup over the driver, and the load average after each run. Every
returned state dict is loaded into the architecture and its keys and shapes checked. The Spark
session's start-up is timed apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import numpy as np
import pandas as pd
import psutil
import torch
from tqdm import tqdm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from models.fit import class_targets, default_heavy_input, train_heavy  # noqa: E402
from models.heavy import MobileNetLike  # noqa: E402
from models.preprocess import decode_batch  # noqa: E402
from tests.models._models_testutil import frames_df  # noqa: E402

CLASSES = ["red", "blue", "green"]
WIDTH_MULT = 0.5  # train_heavy's default


def labelled_frames(n: int, seed: int = 7) -> tuple[list, np.ndarray]:
    """Labels and the heavy model's decoded uint8 inputs of `n` deterministic frames."""
    frames = frames_df(n, CLASSES, seed=seed)
    return list(frames["label"]), decode_batch(list(frames["jpeg"]), default_heavy_input())


def samples_per_epoch(labels: list) -> int:
    """train_heavy's epoch without prefilter scores: every class frame and as many negatives."""
    y = class_targets(labels, CLASSES)
    return int((y > 0).sum() + min((y == 0).sum(), (y > 0).sum()))


def cpu_now(spark) -> float:
    """CPU seconds of this process, its reaped children (torchrun and its ranks) and Spark's JVM.

    The Python workers' CPU comes back from the tasks themselves: a worker the JVM kills when
    idle is reaped by no ancestor of ours, so walking the process tree would lose it."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    with contextlib.suppress(psutil.Error, AttributeError):
        jvm = psutil.Process(spark.sparkContext._gateway.proc.pid).cpu_times()
        total += jvm.user + jvm.system
    return total


def to_bytes(model: torch.nn.Module) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous() for k, v in model.state_dict().items()})


def from_bytes(data: bytes) -> torch.nn.Module:
    from safetensors.torch import load

    model = MobileNetLike(num_classes=len(CLASSES), width_mult=WIDTH_MULT)
    model.load_state_dict(load(data), strict=True)
    return model


def fit_member(labels: list, images: np.ndarray, seed: int, epochs: int, threads: int) -> tuple[bytes, float, float]:
    """One heavy member with train_heavy at `threads` torch threads, deterministic (like
    `workflows.training.deterministic_torch`); its weights, final loss and CPU seconds. The
    caller's (or a reused Python worker's) torch settings are restored after."""
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    c0 = time.process_time()
    try:
        model, history = train_heavy(pd.DataFrame({"label": labels}), CLASSES, epochs=epochs, seed=seed, images=images)
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])
    return to_bytes(model), history[-1]["loss"], time.process_time() - c0


# Each way returns (weights, final loss) per member and the CPU seconds spent where cpu_now
# cannot see them (in Spark's Python workers).

def in_driver(labels, images, members: int, epochs: int, spark=None, threads: int = 2):
    out = [fit_member(labels, images, k, epochs, threads)
           for k in tqdm(range(members), desc="driver", unit="member", leave=False)]
    return [(w, loss) for w, loss, _ in out], 0.0


def one_task_per_model(labels, images, members: int, epochs: int, spark):
    data = spark.sparkContext.broadcast((labels, images))

    def task(k: int) -> tuple[int, bytes, float, float]:
        c0 = time.process_time()
        weights, loss, _ = fit_member(*data.value, seed=k, epochs=epochs, threads=1)
        return k, weights, loss, time.process_time() - c0

    out = sorted(spark.sparkContext.parallelize(range(members), members).map(task).collect())
    data.unpersist()
    return [(w, loss) for _, w, loss, _ in out], sum(o[3] for o in out)


def ddp_members(labels: list, images: np.ndarray, members: int, epochs: int, batch_size: int = 48,
                lr: float = 5e-3, weight_decay: float = 4e-5) -> list[tuple[bytes, float]] | None:
    """Run in every torchrun process: train each member with DDP; every rank returns rank 0's
    weights (TorchDistributor keeps whichever rank's output it reads)."""
    import math

    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    from models.augment import augment
    from models.preprocess import to_tensor

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    spec = default_heavy_input()
    y = torch.from_numpy(class_targets(labels, CLASSES))
    pos, neg = np.flatnonzero(y.numpy() > 0), np.flatnonzero(y.numpy() == 0)
    n_neg = min(len(neg), len(pos))
    steps = max(1, math.ceil((len(pos) + n_neg) / batch_size))
    out = []
    for seed in range(members):
        torch.manual_seed(seed)
        model = MobileNetLike(num_classes=len(CLASSES), width_mult=WIDTH_MULT).to(memory_format=torch.channels_last)
        ddp = DistributedDataParallel(model)
        opt = torch.optim.AdamW(ddp.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps, pct_start=0.2)
        # the batches are drawn alike on every rank; augmentation is each rank's own
        batches, aug_rng = np.random.default_rng(seed), np.random.default_rng(1000 * seed + rank)
        loss_fn, total, count = nn.CrossEntropyLoss(), 0.0, 0
        for _ in range(epochs):
            ddp.train()
            idx = np.concatenate([pos, batches.choice(neg, n_neg, replace=False)])
            idx = idx[batches.permutation(len(idx))]
            total, count = 0.0, 0
            for step in range(steps):
                b = idx[step * batch_size:(step + 1) * batch_size][rank::world]
                x = to_tensor(augment(images[b], aug_rng), spec).contiguous(memory_format=torch.channels_last)
                loss = loss_fn(ddp(x), y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()  # the gradients' allreduce happens here
                opt.step()
                sched.step()
                total, count = total + float(loss.detach()) * len(b), count + len(b)
        model.to(memory_format=torch.contiguous_format)
        out.append((to_bytes(model), total / max(count, 1)))
    shared = [out]
    dist.broadcast_object_list(shared, src=0)
    dist.destroy_process_group()
    return shared[0]


def with_torch_distributor(labels, images, members: int, epochs: int, spark):
    from pyspark.ml.torch.distributor import TorchDistributor

    with contextlib.redirect_stdout(sys.stderr):  # torchrun's output; keeps --json's stdout clean
        return TorchDistributor(num_processes=2, local_mode=True, use_gpu=False).run(
            ddp_members, labels, images, members, epochs), 0.0


def start_spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (SparkSession.builder.master("local[2]").appName("bench_training")
            .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
            .config("spark.python.worker.reuse", "true").config("spark.driver.memory", "2g")
            .getOrCreate())


WAYS = {"driver (2 threads)": in_driver, "1 Spark task per model": one_task_per_model,
        "TorchDistributor DDP x2": with_torch_distributor}


def run_way(way, labels, images, members: int, epochs: int, spark, work: int) -> dict:
    """One timed run; its weights are loaded back into the architecture and checked."""
    c0, t0 = cpu_now(spark), time.perf_counter()
    results, worker_cpu = way(labels, images, members, epochs, spark)
    wall, cpu = time.perf_counter() - t0, cpu_now(spark) - c0 + worker_cpu
    reference = MobileNetLike(num_classes=len(CLASSES), width_mult=WIDTH_MULT).state_dict()
    for weights, _ in results:
        state = from_bytes(weights).state_dict()
        assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in reference.items()}
    return {"wall_s": wall, "cpu_s": cpu, "final_loss": float(np.mean([loss for _, loss in results]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each way, interleaved")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args()
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    labels, images = labelled_frames(args.frames)
    work = samples_per_epoch(labels) * args.epochs * args.members
    say(f"{args.members} heavy members x {args.epochs} epochs over {args.frames} frames "
        f"({work} training samples); {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    spark = start_spark()
    spark.sparkContext.parallelize([0], 1).map(lambda x: x).collect()  # start a Python worker
    spark_start = time.perf_counter() - t0
    runs: dict[str, list] = {name: [] for name in WAYS}
    errors: dict[str, str] = {}
    loads = []
    with tqdm(total=args.repeats * len(WAYS), desc="runs", unit="run", disable=args.json) as bar:
        for _ in range(args.repeats):  # interleaved, so load shifts hit every way
            for name, way in WAYS.items():
                bar.set_postfix_str(name)
                if name not in errors:
                    try:
                        runs[name].append(run_way(way, labels, images, args.members, args.epochs, spark, work))
                    except Exception as e:  # a way that fails here is reported, not fatal
                        errors[name] = f"{type(e).__name__}: {str(e)[-2000:]}"
                loads.append(os.getloadavg()[0])
                bar.update(1)
    spark.stop()
    rows = []
    for name, rs in runs.items():
        if name in errors:
            rows.append({"way": name, "error": errors[name]})
            continue
        best = min(rs, key=lambda r: r["wall_s"])
        rows.append({"way": name, "wall_s_min": round(best["wall_s"], 1),
                     "wall_s_median": round(statistics.median(r["wall_s"] for r in rs), 1),
                     "cpu_s": round(best["cpu_s"], 1), "samples_per_s": round(work / best["wall_s"], 1),
                     "final_loss": round(best["final_loss"], 3)})
    base = rows[0].get("wall_s_min")
    for row in rows:
        if base and "wall_s_min" in row:
            row["speedup"] = round(base / row["wall_s_min"], 2)
    summary = {"frames": args.frames, "epochs": args.epochs, "members": args.members, "samples": work,
               "repeats": args.repeats, "spark_start_s": round(spark_start, 1),
               "load_avg_1min": [round(x, 2) for x in loads], "rows": rows}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"Spark session start (not in the rows): {spark_start:.1f} s; 1-min load average after each run: "
          + " ".join(f"{x:.1f}" for x in loads))
    print(f"{'way':<26}{'wall s':>8}{'(median)':>10}{'CPU s':>8}{'samples/s':>11}{'vs driver':>11}{'loss':>7}")
    for r in rows:
        if "error" in r:
            print(f"{r['way']:<26} failed: {r['error'][:300]}")
        else:
            print(f"{r['way']:<26}{r['wall_s_min']:>8.1f}{r['wall_s_median']:>10.1f}{r['cpu_s']:>8.1f}"
                  f"{r['samples_per_s']:>11.1f}{r['speedup']:>10.2f}x{r['final_loss']:>7.3f}")


if __name__ == "__main__":
    main()
