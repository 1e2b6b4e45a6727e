"""The benchmark's fixed, seeded days: one planned set of calls rendered once and encoded
twice (a keyframe every 1 s and every 10 s), a share of the calls at 1280x720.

Each encoding is its own date in one store, so the nightly pipeline runs on each as it
would on a real day. A generated set is cached under `var/bench/days/<key>/`, the key
being a hash of every parameter: a second `make bench` does not generate again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 1  # bump when the generator's output for the same parameters changes


@dataclass(frozen=True)
class DaySpec:
    """What a benchmark day is: its calls, their lengths, and the encodings."""

    name: str
    calls: int
    seed: int
    min_seconds: float
    max_seconds: float
    first_date: str  # the first encoding's date; the next ones follow day by day
    keyints_s: tuple[int, ...] = (1, 10)  # seconds between keyframes, one encoding each
    hd_share: float = 0.15  # of calls encoded at HD_SIZE instead of 640x360
    backgrounds: str = "holdout"
    take: int | None = None  # only the `take` longest planned calls (a smaller day from the same files)

    def key(self) -> str:
        blob = json.dumps([dataclasses.asdict(self), GENERATOR_VERSION], sort_keys=True)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    def dates(self) -> dict[str, str]:
        """{"gop1s": date, "gop10s": date, ...}"""
        first = dt.date.fromisoformat(self.first_date)
        return {f"gop{k}s": (first + dt.timedelta(days=i)).isoformat() for i, k in enumerate(self.keyints_s)}


HD_SIZE = (1280, 720)
# at least 2 hours of video (64 calls of 60-180 s: 2.1 h), a keyframe every 1 s and every 10 s
BENCH_DAY = DaySpec("bench", calls=64, seed=18, min_seconds=60, max_seconds=180, first_date="2026-12-01")
# the small day for the fixed cost of a run: 2 calls, one encoding
TINY_DAY = DaySpec("tiny", calls=2, seed=19, min_seconds=20, max_seconds=30, first_date="2026-12-11",
                   keyints_s=(1,), hd_share=0.0)
# the test suite's smoke day: a few seconds of video per encoding
SMOKE_DAY = DaySpec("smoke", calls=2, seed=20, min_seconds=4, max_seconds=6, first_date="2026-12-21",
                    hd_share=0.5)


def store_dir(days_root: Path, spec: DaySpec) -> Path:
    return days_root / spec.key() / "store"


def plan_calls(spec: DaySpec) -> list[dict]:
    """The planned calls of the first encoding's date, a seeded share of them at HD_SIZE."""
    from synth.generate import plan_day

    plan = plan_day(next(iter(spec.dates().values())), spec.calls, spec.seed, spec.backgrounds,
                    spec.min_seconds, spec.max_seconds)
    calls = plan["calls"]
    rng = np.random.default_rng([spec.seed, 720])
    hd = set(rng.choice(len(calls), round(spec.hd_share * len(calls)), replace=False).tolist()) if calls else set()
    for i in hd:
        calls[i]["width"], calls[i]["height"] = HD_SIZE
    return plan


def _renamed(call: dict, date: str) -> dict:
    """The same call on another date: its id and key carry the date."""
    from percolate.core.layout import video_key
    from synth.generate import call_id_for

    i = int(call["call_id"].rsplit("-", 1)[1])
    call_id = call_id_for(date, i)
    return dict(call, call_id=call_id, video_key=video_key(date, call_id))


def pool_dir(days_root: Path, spec: DaySpec) -> Path:
    """Where the encoded calls are kept, one file per call and encoding: shared by every `take`
    of the same planned day, and filled call by call (an interrupted generation resumes)."""
    full = dataclasses.replace(spec, take=None)
    return days_root / full.key() / "pool"


def _encode(job: tuple[dict, int, list[tuple[str, int, int, int]], str]) -> tuple[int, float]:
    from synth.generate import Rendition, encode_renditions

    call, seed, outputs, record = job
    start = time.process_time()
    tmp = [(f"{o[0]}.part.mp4", *o[1:]) for o in outputs]
    frames = encode_renditions(call, seed, [Rendition(*o) for o in tmp])
    for (final, *_), (part, *_) in zip(outputs, tmp):
        os.replace(part, final)
    cpu = time.process_time() - start
    Path(record).write_text(json.dumps({"frames": frames, "cpu_s": round(cpu, 3)}))
    return frames, cpu


def ensure_day(days_root: Path, spec: DaySpec, workers: int = 2) -> dict:
    """Generate the day set unless cached; its description (store, dates, video seconds,
    generation cost: the CPU seconds of rendering and encoding its calls)."""
    from percolate.core.layout import truth_key
    from percolate.io.manifest import write_manifest
    from percolate.io.store import open_store
    from synth.scene import FPS
    from workflows.progress import bar

    root = days_root / spec.key()
    done = root / "day.json"
    if done.exists():
        return dict(json.loads(done.read_text()), cached=True)
    shutil.rmtree(root / "store", ignore_errors=True)
    store = open_store(str(store_dir(days_root, spec)))
    pool = pool_dir(days_root, spec)
    pool.mkdir(parents=True, exist_ok=True)
    plan = plan_calls(spec)
    dates = spec.dates()
    keyints = dict(zip(dates, spec.keyints_s))
    order = sorted(range(len(plan["calls"])), key=lambda i: (-plan["calls"][i]["duration_s"], i))
    chosen = sorted(order[:spec.take] if spec.take else order)
    plan["calls"] = [plan["calls"][i] for i in chosen]
    files = {i: {name: pool / f"{i:05d}-{name}.mp4" for name in dates} for i in chosen}
    todo = [i for i in sorted(chosen, key=order.index) if not all(f.exists() for f in files[i].values())]
    started = time.monotonic()
    calls = dict(zip(chosen, plan["calls"]))
    jobs = [(calls[i], plan["seed"], [(str(files[i][n]), keyints[n] * FPS, calls[i]["width"], calls[i]["height"])
                                      for n in dates], str(pool / f"{i:05d}.json")) for i in todo]
    if jobs:
        with bar(len(jobs), f"generating the {spec.name} day ({len(dates)} encodings)", "call") as progress, \
                mp.get_context("spawn").Pool(max(1, min(workers, len(jobs)))) as workers_pool:
            for _ in workers_pool.imap_unordered(_encode, jobs):
                progress.update(1)
    per_date = {name: [_renamed(c, date) for c in plan["calls"]] for name, date in dates.items()}
    for name, date in dates.items():
        for i, call in zip(chosen, per_date[name]):
            target = store.path(call["video_key"])
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(files[i][name], target)  # the pool's file, not a copy
        store.put_bytes(truth_key(date), json.dumps(dict(plan, date=date, calls=per_date[name]), indent=1).encode())
        write_manifest(store, date, [{"call_id": c["call_id"], "user_id": c["user_id"],
                                      "video_key": c["video_key"],
                                      "size_bytes": store.path(c["video_key"]).stat().st_size}
                                     for c in per_date[name]])
    records = [json.loads((pool / f"{i:05d}.json").read_text()) for i in chosen
               if (pool / f"{i:05d}.json").exists()]
    video_s = sum(c["duration_s"] for c in plan["calls"])
    out = {"name": spec.name, "key": spec.key(), "spec": dataclasses.asdict(spec),
           "store": str(store_dir(days_root, spec)), "dates": dates, "calls": len(plan["calls"]),
           "video_seconds": round(video_s, 2),
           "hd_calls": sum(1 for c in plan["calls"] if (c["width"], c["height"]) == HD_SIZE),
           "generation": {"cpu_s": round(sum(r["cpu_s"] for r in records), 1), "calls_timed": len(records),
                          "wall_s_this_time": round(time.monotonic() - started, 1), "workers": workers,
                          "method": "rendered once, encoded once per keyframe interval"}}
    done.write_text(json.dumps(out, indent=2))
    return dict(out, cached=False)
