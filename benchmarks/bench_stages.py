"""Where the CPU goes inside the prefilter and heavy stages, and what the hand-over costs.

    python benchmarks/bench_stages.py [--calls 4] [--seconds 60] [--repeats 5] [--spark]

Generates `calls` calls (640x360 H.264, a keyframe every second, training backgrounds, some
with a cup), samples them at 1 fps like the nightly run, and loads the shipped models through
the registry (sha256-checked) under a temporary directory. All figures are CPU seconds of
this process (`time.process_time`, one torch thread, as in a Spark task), the median of
`repeats`, per frame unless said otherwise:

- prefilter: JPEG decode with draft, resize, tensor build (and as it was built until
  2026-12-07), the forward pass at several batch
  sizes, `inference.prefilter_batches` end to end;
- heavy: full JPEG decode + crop + resize, forward-only per batch size, the stage's own
  `classify_chunk` (decode + reuse test + forward) per frame;
- both models' forward in the predictor's variants: NCHW, channels-last, channels-last with
  batch norm folded (`models.predictor`), and how far their outputs differ;
- Arrow <-> pandas at the Arrow batch sizes Spark would use, and a Parquet write + read of
  the frames table (pyarrow);
- hand-over: JPEG encode of a sampled frame (the sampler's quality) vs the prefilter run on
  the decoded RGB frame directly;
- a Python worker's start: interpreter + torch import + model load (a subprocess; its CPU);
- with `--spark`: the prefilter and heavy transforms in a local[2] session (process-tree CPU):
  Arrow batch sizes, with and without the stable-batch shuffle, the heavy stage reading every
  frame's JPEG to join the survivors vs reading the survivors only, Python workers and model
  loads per worker.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


def median_cpu(fn, repeats: int) -> float:
    """Median CPU seconds of `fn()` over `repeats` runs (one warm-up first)."""
    fn()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def sampled_frames(workdir: str, calls: int, seconds: float) -> list[dict]:
    """Calls rendered, encoded and sampled at 1 fps: one dict per frame (call, index, jpeg)."""
    from percolate.video.decode import sample_video
    from synth.generate import encode_call, plan_day

    plan = plan_day("2026-02-01", calls=calls, seed=11, backgrounds="train", min_seconds=seconds,
                    max_seconds=seconds, cup_share=0.5)
    rows = []
    for call in plan["calls"][:calls]:
        path = os.path.join(workdir, f"{call['call_id']}.mp4")
        encode_call(call, plan["seed"], path)
        _, frames = sample_video(path, fps=1.0)
        rows += [{"call_id": call["call_id"], "user_id": call["user_id"], "frame_index": f.frame_index,
                  "ts_ms": f.ts_ms, "jpeg": f.jpeg, "decode_mode": "keyframes"} for f in frames]
    return rows


def shipped_registry(workdir: str):
    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.io.store import LocalStore

    store = LocalStore(os.path.join(workdir, "registry"))
    registry = ModelRegistry(store)
    ensure_production(registry)
    return store.uri, registry.resolve("prefilter", "production"), registry.resolve("heavy", "production")


def _nchw_broadcast(batch: np.ndarray, spec):
    """`to_tensor` as it was: (x - mean) / std with (1, 3, 1, 1) statistics over an NCHW view."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def prefilter_parts(model, jpegs: list[bytes], repeats: int) -> dict:
    from models.preprocess import decode_jpeg, resize, to_tensor
    from models.predictor import BATCH

    spec, n = model.input, len(jpegs)
    drafted = [decode_jpeg(j, (spec.width, spec.height)) for j in jpegs]
    inputs = model.decode_inputs(jpegs)
    out = {
        "jpeg_decode_draft_ms": median_cpu(lambda: [decode_jpeg(j, (spec.width, spec.height)) for j in jpegs], repeats),
        "jpeg_decode_full_ms": median_cpu(lambda: [decode_jpeg(j) for j in jpegs], repeats),
        "resize_ms": median_cpu(lambda: [resize(a, spec) for a in drafted], repeats),
        "to_tensor_ms": median_cpu(lambda: [to_tensor(inputs[i:i + BATCH], spec, True) for i in range(0, n, BATCH)],
                                   repeats),
        # what to_tensor computed until 2026-12-07: the same numbers, broadcast over NCHW
        "to_tensor_nchw_broadcast_ms": median_cpu(
            lambda: [_nchw_broadcast(inputs[i:i + BATCH], spec) for i in range(0, n, BATCH)], repeats),
    }
    for size in (1, 16, 64, 256):
        def run(size=size):
            for i in range(0, n, size):
                model.locate_inputs(inputs[i:i + size])
        out[f"forward_batch{size}_ms"] = median_cpu(run, repeats)
    out["end_to_end_ms"] = median_cpu(lambda: model.locate_inputs(model.decode_inputs(jpegs)), repeats)
    return {k: round(v / n * 1000, 3) for k, v in out.items()}


def heavy_parts(model, jpegs: list[bytes], centers: np.ndarray, repeats: int) -> dict:
    from models.preprocess import crop_square, decode_jpeg, resize

    spec, n = model.input, len(jpegs)
    full = [decode_jpeg(j) for j in jpegs]
    inputs = model.decode_inputs(jpegs, centers)
    out = {
        "jpeg_decode_full_ms": median_cpu(lambda: [decode_jpeg(j) for j in jpegs], repeats),
        "crop_resize_ms": median_cpu(lambda: [resize(crop_square(a, c, spec.crop), spec)
                                              for a, c in zip(full, centers)], repeats),
    }
    for size in (1, 8, 16, 32, 64, 256):
        def run(size=size):
            for i in range(0, n, size):
                model.predict_inputs(inputs[i:i + size])
        out[f"forward_batch{size}_ms"] = median_cpu(run, repeats)
    return {k: round(v / n * 1000, 3) for k, v in out.items()}


def predictor_variants(models: dict, jpegs: list[bytes], centers: np.ndarray, repeats: int) -> dict:
    """Each model's forward per frame (at the tuned batch, normalising included) in the
    predictor's memory layouts and with its batch norms as trained or folded
    (`models.predictor.CHANNELS_LAST`, `FOLD_BATCH_NORM`); and the largest difference in an
    output from the NCHW, unfolded one."""
    import copy

    import models.predictor as predictor_module
    from percolate.core.tuning import HEAVY_FORWARD_BATCH, PREFILTER_FORWARD_BATCH

    variants = {"nchw": (False, False), "channels_last": (True, False), "channels_last_folded": (True, True)}
    out = {}
    for role, model in models.items():
        inputs = model.decode_inputs(jpegs, centers if role == "heavy" else None)
        batch = HEAVY_FORWARD_BATCH if role == "heavy" else PREFILTER_FORWARD_BATCH
        saved = predictor_module.CHANNELS_LAST, predictor_module.FOLD_BATCH_NORM
        outputs = {}
        try:
            for name, (channels_last, fold) in variants.items():
                predictor_module.CHANNELS_LAST, predictor_module.FOLD_BATCH_NORM = channels_last, fold
                p = predictor_module.Predictor(role, model.version, model.spec, copy.deepcopy(model.module))

                def run(p=p):
                    return p.locate_inputs(inputs, batch)[0] if role == "prefilter" else p.predict_inputs(inputs, batch)
                outputs[name] = run()
                out[f"{role}_{name}_ms"] = round(median_cpu(run, repeats) / len(inputs) * 1000, 3)
        finally:
            predictor_module.CHANNELS_LAST, predictor_module.FOLD_BATCH_NORM = saved
        out[f"{role}_largest_difference"] = max(float(np.abs(o - outputs["nchw"]).max()) for o in outputs.values())
    return out


def heavy_stage(frames, registry_uri: str, version: str, repeats: int, tolerance: float) -> float:
    """CPU ms per frame of the heavy stage's Python side (`heavy_batches`), model loaded."""
    from percolate.inference import heavy_batches

    keep = ["call_id", "frame_index"]

    def run():
        list(heavy_batches(iter([frames]), registry_uri, None, version, keep, reuse_tolerance=tolerance))

    return round(median_cpu(run, repeats) / len(frames) * 1000, 3)


def arrow_parts(frames, repeats: int, workdir: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frames, preserve_index=False)
    n = table.num_rows
    out = {}
    for size in (64, 1024):
        batches = table.to_batches(max_chunksize=size)
        out[f"arrow_to_pandas_batch{size}_ms"] = median_cpu(lambda: [b.to_pandas() for b in batches], repeats)
        pandas = [b.to_pandas() for b in batches]
        out[f"pandas_to_arrow_batch{size}_ms"] = median_cpu(
            lambda: [pa.RecordBatch.from_pandas(p, preserve_index=False) for p in pandas], repeats)
    path = os.path.join(workdir, "frames.parquet")
    out["parquet_write_ms"] = median_cpu(lambda: pq.write_table(table, path), repeats)
    out["parquet_read_ms"] = median_cpu(lambda: pq.read_table(path), repeats)
    return {k: round(v / n * 1000, 3) for k, v in out.items()}


def handover_parts(model, jpegs: list[bytes], repeats: int, quality: int = 90) -> dict:
    """The sampler's JPEG encode per frame vs the prefilter on the decoded frame itself."""
    from PIL import Image

    from models.preprocess import decode_jpeg, resize

    rgbs = [decode_jpeg(j) for j in jpegs]
    spec, n = model.input, len(jpegs)

    def encode():
        for a in rgbs:
            Image.fromarray(a, "RGB").save(io.BytesIO(), format="JPEG", quality=quality)

    def prefilter_on_rgb():  # what a fused sampler would do with the frame it already holds
        inputs = np.stack([resize(a, spec) for a in rgbs])
        model.locate_inputs(inputs)

    out = {"jpeg_encode_q%d_ms" % quality: median_cpu(encode, repeats),
           "prefilter_on_rgb_ms": median_cpu(prefilter_on_rgb, repeats)}
    res = {k: round(v / n * 1000, 3) for k, v in out.items()}
    res["jpeg_bytes_mean"] = int(np.mean([len(j) for j in jpegs]))
    return res


def worker_start(registry_uri: str, version: str) -> dict:
    """CPU seconds of a fresh interpreter: bare, + torch import, + the prefilter's load."""
    steps = {
        "python_bare_s": "pass",
        "python_torch_s": "import torch",
        "python_torch_pandas_pyarrow_s": "import torch, pandas, pyarrow",
        "python_load_prefilter_s": ("from percolate.inference import load_model; "
                                    f"load_model({registry_uri!r}, None, 'prefilter', {version!r})"),
    }
    out = {}
    for name, code in steps.items():
        times = []
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            times.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        out[name] = round(statistics.median(times), 3)
    return out


def spark_stages(frames, registry_uri: str, pre_v: str, heavy_v: str, workdir: str, repeats: int,
                 copies: int = 10) -> dict:
    """The prefilter and heavy transforms in local[2] on `copies` copies of the frames (new
    call ids): CPU of the whole process tree (JVM, Python workers) per frame, the distinct
    Python workers and the model loads per worker."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from percolate.core.metering import tree_cpu_seconds
    from percolate.core.settings import Settings
    from percolate.io.spark import get_spark
    from percolate.transforms.scoring import classify_frames, in_stable_batches, score_frames

    many = pd.concat([frames.assign(call_id=frames["call_id"] + f"-{k}") for k in range(copies)], ignore_index=True)
    path, passed_path = os.path.join(workdir, "frames_spark.parquet"), os.path.join(workdir, "passed.parquet")
    pq.write_table(pa.Table.from_pandas(many.drop(columns=["prefilter_score", "loc_x", "loc_y"]),
                                        preserve_index=False), path, row_group_size=256)
    # about 5% pass, as on the day: every 20th frame
    survivors = many.iloc[::20].reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(survivors, preserve_index=False), passed_path)
    os.environ["PERCOLATE_HOME"] = os.path.join(workdir, "home")
    spark = get_spark("bench-stages", Settings.from_env(), master="local[2]")
    n = len(many)

    def cpu_ms(make_df, per: int) -> float:  # median of `repeats` runs
        times = []
        for _ in range(repeats):
            c0 = tree_cpu_seconds(os.getpid())
            make_df().write.mode("overwrite").parquet(os.path.join(workdir, "out.parquet"))
            times.append(tree_cpu_seconds(os.getpid()) - c0)
        return round(statistics.median(times) / per * 1000, 3)

    def prefilter(stable: bool):
        df = spark.read.parquet(path)
        df = in_stable_batches(df, 4) if stable else df
        return score_frames(df, registry_uri=registry_uri, endpoint_url=None, version=pre_v)

    keys = ["call_id", "frame_index", "prefilter_score", "loc_x", "loc_y"]

    def heavy(join_all: bool):
        if join_all:  # the heavy job as it is: every sampled frame's JPEG is read to join the survivors
            passed = spark.read.parquet(passed_path).select(*keys)
            df = spark.read.parquet(path).join(F.broadcast(passed), ["call_id", "frame_index"])
        else:
            df = spark.read.parquet(passed_path)
        return classify_frames(in_stable_batches(df, 2), registry_uri=registry_uri, endpoint_url=None,
                               version=heavy_v, reuse_tolerance=4.0)

    out = {"spark_frames": n, "spark_survivors": len(survivors)}
    cpu_ms(lambda: prefilter(True), n)  # warm-up: workers start, models load
    cpu_ms(lambda: heavy(False), len(survivors))
    for size in ("64", "1024"):
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", size)
        out[f"prefilter_shuffled_batch{size}_ms_per_frame"] = cpu_ms(lambda: prefilter(True), n)
        out[f"prefilter_unshuffled_batch{size}_ms_per_frame"] = cpu_ms(lambda: prefilter(False), n)
    out["read_only_ms_per_frame"] = cpu_ms(lambda: spark.read.parquet(path).select(F.length("jpeg").alias("b")), n)
    out["shuffle_only_ms_per_frame"] = cpu_ms(
        lambda: in_stable_batches(spark.read.parquet(path), 4).select(F.length("jpeg").alias("b")), n)
    out["heavy_join_all_frames_ms_per_survivor"] = cpu_ms(lambda: heavy(True), len(survivors))
    out["heavy_survivors_only_ms_per_survivor"] = cpu_ms(lambda: heavy(False), len(survivors))
    probe = spark.read.parquet(path).repartition(8).mapInPandas(_worker_probe, "pid long, loads long")
    rows = probe.collect()
    out["python_workers_seen"] = len({r["pid"] for r in rows})
    out["max_model_loads_per_worker"] = max(r["loads"] for r in rows)
    spark.stop()
    return out


def _worker_probe(batches):
    import pandas as pd

    from percolate import inference

    for _ in batches:
        pass
    yield pd.DataFrame({"pid": [os.getpid()], "loads": [len(inference._MODELS)]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spark", action="store_true", help="also run the prefilter transform in local[2]")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import pandas as pd

    from percolate.inference import load_model, pin_torch_threads

    pin_torch_threads(1)
    with tempfile.TemporaryDirectory(prefix="percolate-bench-stages-") as workdir:
        rows = sampled_frames(workdir, args.calls, args.seconds)
        registry_uri, pre_v, heavy_v = shipped_registry(workdir)
        prefilter = load_model(registry_uri, None, "prefilter", pre_v)
        heavy = load_model(registry_uri, None, "heavy", heavy_v)
        jpegs = [r["jpeg"] for r in rows]
        scores, centers, _ = prefilter.locate_inputs(prefilter.decode_inputs(jpegs))
        frames = pd.DataFrame(rows)
        frames["prefilter_score"], frames["loc_x"], frames["loc_y"] = scores, centers[:, 0], centers[:, 1]
        report = {
            "frames": len(rows), "pass_rate_at_threshold": round(float(np.mean(scores >= prefilter.spec["threshold"])), 4),
            "prefilter": prefilter_parts(prefilter, jpegs, args.repeats),
            "heavy": heavy_parts(heavy, jpegs, centers, args.repeats),
            "predictor_variants": predictor_variants({"prefilter": prefilter, "heavy": heavy}, jpegs, centers,
                                                     args.repeats),
            "heavy_stage_ms": {"tolerance_0": heavy_stage(frames, registry_uri, heavy_v, args.repeats, 0.0),
                               "tolerance_4": heavy_stage(frames, registry_uri, heavy_v, args.repeats, 4.0)},
            "arrow_parquet": arrow_parts(frames, args.repeats, workdir),
            "handover": handover_parts(prefilter, jpegs, args.repeats),
            "worker_start": worker_start(registry_uri, pre_v),
        }
        if args.spark:
            report["spark"] = spark_stages(frames, registry_uri, pre_v, heavy_v, workdir, args.repeats)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for section, figures in report.items():
            if isinstance(figures, dict):
                print(f"{section}:")
                for k, v in figures.items():
                    print(f"  {k:40s} {v}")
            else:
                print(f"{section:42s} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
