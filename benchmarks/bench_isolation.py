"""Benchmark the isolated decode (one forked child per video) against in-process decoding.

    python benchmarks/bench_isolation.py [--seconds 5 60] [--repeats 5] [--parent-mb 0 500]

For each clip length, times `sample_video` (baseline) and `sample_video_isolated` at
1 fps, calls interleaved, and prints the median wall time per video, the CPU time (the caller's
plus its children's) and the overhead of isolation in milliseconds and percent.
`--parent-mb` makes the caller hold that much touched memory first, like a Spark
worker holding Arrow batches: fork copies page tables, so its cost grows with the caller.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bench_sampler import make_video  # noqa: E402
from percolate.video.isolation import sample_video_isolated  # noqa: E402
from percolate.video.decode import sample_video  # noqa: E402


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn, path: str) -> tuple[float, float, int]:
    c0, t0 = cpu_seconds(), time.perf_counter()
    _, frames = fn(path, fps=1.0)
    return time.perf_counter() - t0, cpu_seconds() - c0, len(frames)


def measure(path: str, repeats: int) -> dict[str, tuple[float, float, int]]:
    """Median wall and CPU seconds of both ways, calls interleaved so load shifts hit both."""
    runs: dict[str, list] = {"in-process": [], "isolated": []}
    for _ in range(repeats):
        runs["in-process"].append(timed(sample_video, path))
        runs["isolated"].append(timed(sample_video_isolated, path))
    return {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v), v[0][2])
            for k, v in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, nargs="+", default=[5, 60])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--parent-mb", type=int, nargs="+", default=[0, 500])
    args = ap.parse_args()
    ballast = []
    with tempfile.TemporaryDirectory() as d:
        clips = {}
        for s in args.seconds:
            clips[s] = os.path.join(d, f"clip{s}.mp4")
            make_video(clips[s], s)
        for mb in sorted(args.parent_mb):
            held = sum(len(b) for b in ballast) >> 20
            if mb > held:
                ballast.append(bytearray(os.urandom(1 << 20)) * (mb - held))  # touched pages
            for s, path in clips.items():
                measure(path, 1)  # warm caches
                got = measure(path, args.repeats)
                (base_wall, base_cpu, n), (iso_wall, iso_cpu, n_iso) = got["in-process"], got["isolated"]
                assert n == n_iso
                print(f"caller holds {mb:4d} MB, {s:3d} s clip ({n} frames): in-process {base_wall * 1e3:7.1f} ms "
                      f"wall {base_cpu * 1e3:7.1f} ms CPU | isolated {iso_wall * 1e3:7.1f} ms wall "
                      f"{iso_cpu * 1e3:7.1f} ms CPU | overhead {(iso_wall - base_wall) * 1e3:+6.1f} ms "
                      f"({(iso_wall / base_wall - 1):+.1%}) wall, {(iso_cpu - base_cpu) * 1e3:+6.1f} ms CPU")


if __name__ == "__main__":
    main()
