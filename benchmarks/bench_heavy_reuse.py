"""Benchmark the heavy stage with reuse of unchanged inputs against running the model on every frame.

    python benchmarks/bench_heavy_reuse.py [--calls 4] [--seconds 60] [--repeats 3]

Generates calls without cups in rooms (static backgrounds, a swaying person), encodes them
as H.264 and samples them at 1 fps like the nightly run. Every sampled frame is sent to the
heavy stage (`percolate.inference.heavy_batches`, an untrained ensemble of the production size)
with its crop placed at two spots:
- "background": a corner, where the picture stays the same (a static look-alike);
- "person": the centre, where the person sways, so inputs change and little is reused.
For each, it prints CPU seconds per frame with tolerance 0 (baseline: the model runs on
every frame) and with the default tolerance, the share of frames reused and the speedup.
The "person" row shows what the comparisons cost when they rarely pay off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jobs.common import pin_torch_threads  # noqa: E402
from percolate.inference import heavy_batches  # noqa: E402
from models.heavy import HeavyEnsemble  # noqa: E402
from models.preprocess import InputSpec  # noqa: E402
from models.registry import ModelRegistry  # noqa: E402
from percolate.core.settings import Settings  # noqa: E402
from percolate.video.decode import sample_video  # noqa: E402
from percolate.io.store import LocalStore  # noqa: E402
from synth.generate import encode_call, plan_day  # noqa: E402

KEEP = ["call_id", "user_id", "frame_index", "ts_ms", "prefilter_score", "loc_x", "loc_y", "decode_mode"]
SPOTS = {"background": (0.12, 0.25), "person": (0.5, 0.55)}


def sampled_calls(workdir: str, calls: int, seconds: float) -> pd.DataFrame:
    plan = plan_day("2026-02-01", calls=calls * 4, seed=7, backgrounds="train", min_seconds=seconds,
                    max_seconds=seconds, cup_share=0.0, distractor_share=0.0)
    rooms = [c for c in plan["calls"] if c["background"].startswith("room:")][:calls]
    rows = []
    for call in rooms:
        path = os.path.join(workdir, f"{call['call_id']}.mp4")
        encode_call(call, plan["seed"], path)
        _, frames = sample_video(path, fps=1.0)
        rows += [{"call_id": call["call_id"], "user_id": call["user_id"], "frame_index": f.frame_index,
                  "ts_ms": f.ts_ms, "prefilter_score": 1.0, "decode_mode": "keyframes", "jpeg": f.jpeg}
                 for f in frames]
    return pd.DataFrame(rows)


def timed(frames: pd.DataFrame, store: str, version: str, tolerance: float) -> tuple[float, int]:
    c0 = time.process_time()
    out = pd.concat(heavy_batches(iter([frames]), store, None, version, KEEP, reuse_tolerance=tolerance))
    return time.process_time() - c0, int(out["reused_from"].notna().sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    pin_torch_threads(1)
    tolerance = Settings.from_env().heavy_reuse_tolerance
    with tempfile.TemporaryDirectory() as d:
        store = os.path.join(d, "store")
        kwargs = {"members": 2, "num_classes": 10, "width_mult": 0.5}
        version = ModelRegistry(LocalStore(store)).register("heavy", HeavyEnsemble(**kwargs).eval(), {
            "arch": "mobilenet_ensemble", "arch_kwargs": kwargs, "input": InputSpec(128, 128, crop=0.5).to_dict(),
            "class_names": [f"brand{i}" for i in range(10)], "threshold": 0.99})
        frames = sampled_calls(d, args.calls, args.seconds)
        print(f"{len(frames)} sampled frames from {frames['call_id'].nunique()} room calls of {args.seconds:.0f} s; "
              f"heavy ensemble, tolerance {tolerance:g} vs 0")
        timed(frames.assign(loc_x=0.5, loc_y=0.5), store, version, 0.0)  # load the model, warm up
        for spot, (x, y) in SPOTS.items():
            at = frames.assign(loc_x=x, loc_y=y)
            runs: dict[float, list] = {0.0: [], tolerance: []}
            for _ in range(args.repeats):  # interleaved, so load shifts hit both
                for tol in runs:
                    runs[tol].append(timed(at, store, version, tol))
            base = statistics.median(r[0] for r in runs[0.0]) / len(at)
            reuse = statistics.median(r[0] for r in runs[tolerance]) / len(at)
            reused = runs[tolerance][0][1]
            print(f"{spot:<11} every frame {base * 1e3:6.2f} ms/frame   with reuse {reuse * 1e3:6.2f} ms/frame "
                  f"({reused / len(at):5.1%} reused)   speedup {base / reuse:4.2f}x")


if __name__ == "__main__":
    main()
