"""Where the sampling task's Python worker spends its CPU, outside Spark.

Runs the nightly sampling task's partition function (`percolate.transforms.sampling`: decode
in a confined child per video, the prefilter in that child on the decoder's frames) on the
first N calls of a date's manifest, in this process, under cProfile, and prints the worker's
CPU, its decode children's CPU (the prefilter's forward passes among them, also shown apart),
and the worker's functions that cost most. The worker's CPU is its own machinery (fork, pipe,
Arrow batches); what a Spark run costs beyond this is the JVM's and the Python worker's
hand-over to it.

    PERCOLATE_HOME=... PERCOLATE_STORE=... PERCOLATE_REGISTRY=... \\
      python -m benchmarks.cost.worker_profile --date 2026-12-01 --calls 12 --prefilter-version v0001 \\
      --keep-rate 0.05

Used for docs/cost.md ("The fused hand-over").
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import sys
import time


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Sum:
    """What a Spark accumulator does for `PrefilterStep.cpu`, in one process."""

    value = 0.0

    def add(self, x: float) -> None:
        self.value += x


def profile(date: str, calls: int, prefilter_version: str | None, top: int = 20, keep_rate: float = 1.0) -> dict:
    import pyarrow as pa

    from percolate.core.settings import Settings
    from percolate.core.tables import MANIFEST, names
    from percolate.inference import load_model
    from percolate.io.manifest import read_manifest
    from percolate.io.store import open_store
    from percolate.transforms.sampling import PrefilterStep, _decode_partition
    from percolate.video.limits import DecodeLimits

    settings = Settings.from_env()
    rows = read_manifest(open_store(settings.store_uri, settings.s3_endpoint_url), date)[:calls]
    if not rows:
        raise SystemExit(f"no calls in the manifest of {date}")
    batch = pa.RecordBatch.from_pylist([{c: r[c] for c in names(MANIFEST)} for r in rows])
    step = None
    if prefilter_version:  # loaded before the clock starts: a worker loads it once
        model = load_model(settings.registry_uri, settings.s3_endpoint_url, "prefilter", prefilter_version)
        step = PrefilterStep(settings.registry_uri, settings.s3_endpoint_url, prefilter_version,
                             float(model.spec["threshold"]), date, keep_rate, cpu=_Sum())
    sampler = settings.sampler
    frames = 0
    worker0, children0 = time.process_time(), _children_cpu()
    prof = cProfile.Profile()
    prof.enable()
    for out in _decode_partition([batch], settings.store_uri, settings.s3_endpoint_url, sampler.fps,
                                 sampler.max_side, sampler.jpeg_quality, DecodeLimits(**sampler.decode_limits()),
                                 sampler.isolated, None, step):
        if "row_kind" in out.schema.names:
            frames += sum(1 for kind in out.column("row_kind").to_pylist() if kind == "frame")
    prof.disable()
    worker, children = time.process_time() - worker0, _children_cpu() - children0
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)
    score_s = step.cpu.value if step is not None else 0.0
    n = max(frames, 1)
    return {"calls": len(rows), "frames": frames, "worker_cpu_s": round(worker, 3),
            "decode_children_cpu_s": round(children, 3), "prefilter_scoring_s": round(score_s, 3),
            "ms_per_frame": {"worker": round(1000 * worker / n, 3), "prefilter_scoring": round(1000 * score_s / n, 3),
                             "decode_children": round(1000 * children / n, 3),
                             "decode_children_rest": round(1000 * (children - score_s) / n, 3)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", required=True)
    parser.add_argument("--calls", type=int, default=12, help="the manifest's first N calls")
    parser.add_argument("--prefilter-version", default=None, help="score as the nightly run does")
    parser.add_argument("--keep-rate", type=float, default=1.0,
                        help="the share of rejected frames whose JPEG is kept (the nightly run's audit keep rate)")
    parser.add_argument("--top", type=int, default=20, help="functions to list")
    args = parser.parse_args(argv)
    print(json.dumps(profile(args.date, args.calls, args.prefilter_version, args.top, args.keep_rate), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
