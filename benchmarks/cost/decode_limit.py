"""The decode limit: PyAV decoding with the sampler's rule and nothing else.

The rule: frames are bucketed by presentation time (bucket k = [k/fps, (k+1)/fps)); where
every bucket that has a frame has a keyframe, only the first keyframe of each bucket is
decoded (the decoder skips non-keyframes); otherwise every frame is decoded and the first of
each bucket kept. Kept frames are converted to RGB arrays at their stored size (what any
consumer needs at least), then dropped. `fps=None` keeps every frame (the naive variant).

`python -m benchmarks.cost.decode_limit OUT.json FILE...` runs it one process per core.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from fractions import Fraction
from typing import Iterator


def _bucket(pts: int, start: int, time_base: Fraction, fps: Fraction) -> int:
    return int((pts - start) * time_base * fps)


def keyframes_serve(path: str, fps: Fraction) -> bool:
    """A demux-only pass: does every bucket that has a frame have a keyframe?"""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        start, tb = stream.start_time or 0, stream.time_base
        framed, keyed = set(), set()
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            b = _bucket(packet.pts, start, tb, fps)
            framed.add(b)
            if packet.is_keyframe:
                keyed.add(b)
    return framed <= keyed


def frames(path: str, fps: float | None, counts: dict, convert=None) -> Iterator[tuple[int, int, object]]:
    """(bucket or frame number, ts_ms, HxWx3 RGB) of every kept frame; `counts` gets
    `decoded`, `kept` and `mode`. `convert(frame)` replaces the conversion to RGB at the stored
    size (`benchmarks.cost.fused_floor` keeps the decoded frame)."""
    import av

    rate = Fraction(str(fps)) if fps else None
    use_keys = rate is not None and keyframes_serve(path, rate)
    counts.update(mode="keyframes" if use_keys else "all", decoded=0, kept=0)
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.codec_context.thread_count = "SLICE", 1
        if use_keys:
            stream.codec_context.skip_frame = "NONKEY"
        start, tb, seen = stream.start_time or 0, stream.time_base, set()
        for packet in container.demux(stream):
            if packet.pts is not None and use_keys:
                b = _bucket(packet.pts, start, tb, rate)
                if not packet.is_keyframe or b in seen:
                    continue
            for frame in packet.decode():
                counts["decoded"] += 1
                key = counts["decoded"] - 1 if rate is None else _bucket(frame.pts, start, tb, rate)
                if key in seen:
                    continue
                seen.add(key)
                counts["kept"] += 1
                pixels = convert(frame) if convert else frame.to_ndarray(format="rgb24")
                yield key, int(frame.pts * tb * 1000), pixels


def decode_file(job: tuple[str, float | None]) -> dict:
    path, fps = job
    counts: dict = {}
    cpu = time.process_time()
    for _ in frames(path, fps, counts):
        pass
    return dict(counts, file=os.path.basename(path), cpu_s=round(time.process_time() - cpu, 3))


def decode_all(paths: list[str], fps: float | None, workers: int) -> list[dict]:
    """Every file through `decode_file`, longest first, on `workers` processes."""
    order = sorted(paths, key=lambda p: -os.path.getsize(p))
    with mp.get_context("fork").Pool(workers) as pool:
        return list(pool.imap_unordered(decode_file, [(p, fps) for p in order]))


def main(argv: list[str]) -> int:
    out, paths = argv[0], argv[1:]
    fps = float(os.environ.get("PERCOLATE_SAMPLE_FPS", "1"))
    started = time.monotonic()
    files = decode_all(paths, fps, os.cpu_count() or 1)
    with open(out, "w") as fh:
        json.dump({"files": files, "wall_s": round(time.monotonic() - started, 2), "fps": fps,
                   "workers": os.cpu_count()}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
