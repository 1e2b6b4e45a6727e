"""Plan and generate a day of synthetic video calls with ground truth.

`plan_day` decides everything (calls, users, durations, backgrounds, cup and distractor
episodes) from (date, calls, seed, ...) without rendering; `generate_day` renders and
encodes every planned call and writes videos, the manifest and the truth to the store.
The manifest is written last: its presence means the day is complete.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from percolate.core.layout import check_date, truth_key, video_key
from percolate.io.manifest import write_manifest
from synth.backgrounds import HEIGHT, WIDTH, background_names
from synth.brands import BRAND_NAMES, DISTRACTOR_KINDS
from synth.scene import FPS, render_call

CUP_SHARE = 0.20  # of calls that show a brand cup
DISTRACTOR_SHARE = 0.30  # of calls that show distractors (drawn independently of cups)
SECOND_BRAND_SHARE = 0.25  # of multi-episode cup calls where one episode shows another brand
FAVOURITE_SHARE = 0.8  # of cup calls showing the user's usual brand
CLIP_SHARE = 0.35  # of calls over real footage (the rest: generated rooms)
EPISODE_COUNTS, EPISODE_P = (1, 2, 3), (0.5, 0.3, 0.2)
MIN_EPISODE_S, MAX_EPISODE_S = 3.0, 20.0
EDGE_S = 0.5  # no episode this close to the start or end of a call (room to slide in/out)
GAP_S = 0.8  # between two episodes of the same kind
USER_POPULATION = 5000
X264_OPTIONS = {"preset": "ultrafast", "crf": "23", "g": "30", "keyint_min": "30", "sc_threshold": "0", "bf": "0"}


def call_id_for(date: str, i: int) -> str:
    return f"c{date.replace('-', '')}-{i:05d}"


def _to_s(frame: int) -> float:
    """Boundary half a frame before `frame`: robust to millisecond rounding of timestamps."""
    return round((frame - 0.5) / FPS, 4)


def _episodes(rng: np.random.Generator, n_frames: int, n: int) -> list[tuple[float, float]]:
    """Up to `n` non-overlapping [start_s, end_s) intervals inside a call of `n_frames` frames."""
    duration = n_frames / FPS
    avail = duration - 2 * EDGE_S
    n = min(n, int((avail + GAP_S) // (MIN_EPISODE_S + GAP_S)))
    if n <= 0:
        spans = [(EDGE_S, duration - EDGE_S)] if avail >= 1.0 else []
    else:
        lengths = rng.uniform(MIN_EPISODE_S, MAX_EPISODE_S, n)
        room = avail - GAP_S * (n - 1)
        if lengths.sum() > room:
            extra = lengths - MIN_EPISODE_S
            lengths = MIN_EPISODE_S + extra * (room - n * MIN_EPISODE_S) / max(extra.sum(), 1e-9)
        slack = max(0.0, room - lengths.sum())
        cuts = np.sort(rng.uniform(0, slack, n))
        spans = []
        for k in range(n):
            start = EDGE_S + cuts[k] + lengths[:k].sum() + k * GAP_S
            spans.append((start, start + lengths[k]))
    out = []
    for s, e in spans:
        k0, k1 = math.ceil(s * FPS), math.floor(e * FPS)
        if k1 > k0:
            out.append((_to_s(k0), _to_s(k1)))
    return out


def plan_day(date: str, calls: int, seed: int, backgrounds: str = "all", min_seconds: float = 20,
             max_seconds: float = 180, cup_share: float = CUP_SHARE,
             distractor_share: float = DISTRACTOR_SHARE) -> dict:
    """The day's ground truth, decided without rendering (deterministic in all arguments).

    `cup_share` and `distractor_share` are the shares of calls showing a brand cup and
    showing distractors: realistic days use the defaults; training days may ask for more
    positives and more hard negatives.
    """
    check_date(date)
    for name, share in (("cup_share", cup_share), ("distractor_share", distractor_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {share}")
    if calls < 0:
        raise ValueError("calls must be >= 0")
    if not 1.0 <= min_seconds <= max_seconds:
        raise ValueError(f"want 1 <= min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    names = background_names(backgrounds)
    clips = [b for b in names if b.startswith("clip:")]
    rooms = [b for b in names if b.startswith("room:")]
    rng = np.random.default_rng([seed & 0xFFFFFFFF, int(date.replace("-", "")), calls])

    n_users = max(1, round(calls / 3)) if calls else 0
    user_ids = [f"u{u:05d}" for u in sorted(rng.choice(USER_POPULATION, n_users, replace=False))]
    favourite = rng.integers(len(BRAND_NAMES), size=n_users)
    owner = rng.permutation(np.concatenate([np.arange(n_users), rng.integers(0, max(n_users, 1),
                                                                             max(0, calls - n_users))]))
    frames = np.round(rng.uniform(min_seconds, max_seconds, calls) * FPS).astype(int)
    cup_calls = set(rng.choice(calls, round(cup_share * calls), replace=False).tolist()) if calls else set()
    dis_calls = set(rng.choice(calls, round(distractor_share * calls), replace=False).tolist()) if calls else set()

    out = []
    for i in range(calls):
        u = int(owner[i])
        call_id = call_id_for(date, i)
        use_clip = clips and (not rooms or rng.random() < CLIP_SHARE)
        pool = clips if use_clip else rooms
        cups = []
        if i in cup_calls:
            spans = _episodes(rng, int(frames[i]), int(rng.choice(EPISODE_COUNTS, p=EPISODE_P)))
            main = int(favourite[u]) if rng.random() < FAVOURITE_SHARE else int(rng.integers(len(BRAND_NAMES)))
            brands = [main] * len(spans)
            if len(spans) >= 2 and rng.random() < SECOND_BRAND_SHARE:
                other = (main + 1 + int(rng.integers(len(BRAND_NAMES) - 1))) % len(BRAND_NAMES)
                brands[int(rng.integers(len(spans)))] = other
            cups = [{"brand": BRAND_NAMES[b], "start_s": s, "end_s": e} for b, (s, e) in zip(brands, spans)]
        distractors = []
        if i in dis_calls:
            spans = _episodes(rng, int(frames[i]), int(rng.choice(EPISODE_COUNTS, p=EPISODE_P)))
            distractors = [{"kind": DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))], "start_s": s,
                            "end_s": e} for s, e in spans]
        out.append({
            "call_id": call_id,
            "user_id": user_ids[u],
            "video_key": video_key(date, call_id),
            "duration_s": round(int(frames[i]) / FPS, 4),
            "fps": FPS,
            "width": WIDTH,
            "height": HEIGHT,
            "background": pool[int(rng.integers(len(pool)))],
            "cups": cups,
            "distractors": distractors,
        })
    return {"date": date, "seed": seed, "backgrounds": backgrounds, "classes": list(BRAND_NAMES), "calls": out}


@dataclass(frozen=True)
class Rendition:
    """One encoding of a rendered call: where to write it, its keyframe interval in frames
    and its size (frames are rendered at WIDTH x HEIGHT and scaled by the encoder)."""

    path: str
    keyint: int = 30
    width: int = WIDTH
    height: int = HEIGHT


def encode_call(call: dict, seed: int, path: str | Path, threads: int = 1) -> int:
    """Render one planned call and write it as H.264 mp4 (keyframe every 30 frames); returns frames."""
    return encode_renditions(call, seed, [Rendition(str(path))], threads)


def encode_renditions(call: dict, seed: int, renditions: list[Rendition], threads: int = 1) -> int:
    """Render one planned call once and encode it into every rendition; returns frames.

    Each rendered frame is copied into one reused BGR frame and converted to YUV once per output
    size, shared by the renditions of that size, where each encoder used to convert a new frame
    on its own: the same mp4 files byte for byte, 13% less CPU a 640x360 frame into the benchmark
    day's two encodings (docs/tuning.md, "the benchmark day's generator").
    """
    import av
    import numpy as np
    from contextlib import ExitStack
    from av.video.reformatter import VideoReformatter

    n = 0
    with ExitStack() as stack:
        by_size: dict[tuple[int, int], list] = {}
        for r in renditions:
            container = stack.enter_context(av.open(str(r.path), "w", format="mp4"))
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = r.width, r.height, "yuv420p"
            stream.codec_context.gop_size = r.keyint
            stream.codec_context.options = {**X264_OPTIONS, "g": str(r.keyint), "keyint_min": str(r.keyint),
                                            "threads": str(threads)}
            by_size.setdefault((r.width, r.height), []).append((container, stream))
        source = av.VideoFrame(WIDTH, HEIGHT, "bgr24")
        plane = source.planes[0]
        pixels = np.frombuffer(plane, np.uint8).reshape(HEIGHT, plane.line_size)[:, :WIDTH * 3]
        pixels.shape = (HEIGHT, WIDTH, 3)  # a view of the frame's plane: raises rather than copy
        reformatters = {size: VideoReformatter() for size in by_size}
        for n, bgr in enumerate(render_call(call, seed, bgr=True), start=1):
            pixels[...] = bgr
            for (width, height), streams in by_size.items():
                frame = reformatters[(width, height)].reformat(source, width=width, height=height, format="yuv420p")
                frame.pts = n - 1
                for container, stream in streams:
                    for packet in stream.encode(frame):
                        container.mux(packet)
        for streams in by_size.values():
            for container, stream in streams:
                for packet in stream.encode():
                    container.mux(packet)
    return n


def _encode_job(job: tuple[dict, int, str, int]) -> tuple[str, str, int]:
    call, seed, path, threads = job
    frames = encode_call(call, seed, path, threads)
    return call["call_id"], path, frames


def generate_day(store, date: str, calls: int, seed: int, backgrounds: str = "all", min_seconds: float = 20,
                 max_seconds: float = 180, workers: int = 2, progress: Callable[[dict], None] | None = None,
                 cup_share: float = CUP_SHARE, distractor_share: float = DISTRACTOR_SHARE) -> dict:
    """Generate and store one day: a video per call, the truth JSON, then the manifest.

    `progress`, when given, is called after each call with calls_done, calls, video_s and
    frames_per_s.
    """

    started = time.monotonic()
    truth = plan_day(date, calls, seed, backgrounds, min_seconds, max_seconds, cup_share, distractor_share)
    plan = {c["call_id"]: c for c in truth["calls"]}
    workers = max(1, min(int(workers), len(plan)))
    rows, done_s, done_frames = [], 0.0, 0
    with tempfile.TemporaryDirectory(prefix="percolate-synth-") as tmp:
        # longest first: better balance across workers
        order = sorted(plan.values(), key=lambda c: -c["duration_s"])
        jobs = [(c, seed, os.path.join(tmp, f"{c['call_id']}.mp4"), 1 if workers > 1 else 0) for c in order]
        if workers == 1:
            results = map(_encode_job, jobs)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap_unordered(_encode_job, jobs)
        try:
            for call_id, path, frames in results:
                call = plan[call_id]
                store.put_file(call["video_key"], path)
                rows.append({"call_id": call_id, "user_id": call["user_id"], "video_key": call["video_key"],
                             "size_bytes": os.path.getsize(path)})
                os.unlink(path)
                done_s += call["duration_s"]
                done_frames += frames
                if progress:
                    el = time.monotonic() - started
                    progress({"calls_done": len(rows), "calls": len(plan), "video_s": done_s,
                              "frames_per_s": done_frames / max(el, 1e-9)})
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    store.put_bytes(truth_key(date), json.dumps(truth, indent=1).encode("utf-8"))
    write_manifest(store, date, rows)  # last: a manifest means the day is complete
    elapsed = time.monotonic() - started
    return {
        "date": date,
        "seed": seed,
        "backgrounds": backgrounds,
        "calls": len(plan),
        "users": len({c["user_id"] for c in plan.values()}),
        "video_seconds": round(done_s, 2),
        "frames": done_frames,
        "cup_calls": sum(1 for c in plan.values() if c["cups"]),
        "distractor_calls": sum(1 for c in plan.values() if c["distractors"]),
        "bytes": sum(r["size_bytes"] for r in rows),
        "elapsed_s": round(elapsed, 2),
        "frames_per_s": round(done_frames / max(elapsed, 1e-9), 1),
    }
