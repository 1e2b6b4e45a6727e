"""Benchmark percolate.video.decode: where a sampled frame's CPU goes, and what each decode costs.

    python benchmarks/bench_sampler.py [--seconds 60] [--repeats 3] [--json out.json]

Generates four seeded 30 fps H.264 videos (x264 veryfast, crf 23): 640x360 calls with a
keyframe every 1 s and every 10 s (with x264's default B-frames), the 10 s one without
B-frames (as WebRTC encoders make them), a 1280x720 screen share with a keyframe every
10 s, and a 320x180 thumbnail track with a keyframe every 1 s (a sidecar). For each it prints, per sampled frame at 1 frame/s:

1. demux + decode under FFmpeg decoder options (threads, skip_frame, skip_loop_filter,
   flags2, skip_idct): CPU, frames decoded, buckets served, PSNR of the sampled frame
   against the same timestamp's frame from a plain full decode, and the largest shift of
   its timestamp from the bucket's first frame;
2. colour conversion + resize (one swscale call, by interpolation), JPEG encode options,
   and the next stage's JPEG decode;
3. `sample_video` end to end in each mode and frame format, with the `VideoInfo` CPU split,
   in video-hours per core-hour and as a ratio to mode "all" measured in the same run.

CPU is `time.process_time` of this process (per core), the best of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from percolate.video.decode import sample_video  # noqa: E402
from sampler_steps import VARIANTS, best_decode, frame_costs, make_video, psnr, reference_frames  # noqa: E402

VIDEOS = {  # name: make_video arguments
    "call 640x360, keyframe 1 s": dict(gop=30),
    "call 640x360, keyframe 10 s": dict(gop=300),
    "call 640x360, keyframe 10 s, no B-frames": dict(gop=300, bframes=0),
    "share 1280x720, keyframe 10 s": dict(w=1280, h=720, gop=300, content="share"),
    # what a low-resolution sidecar track recorded beside the call would cost to sample
    "thumbnail 320x180, keyframe 1 s": dict(w=320, h=180, gop=30),
}
MODES = (("all", "jpeg"), ("nonref", "jpeg"), ("keyframes", "jpeg"), ("auto", "jpeg"), ("auto", "rgb"))


def decoder_variants(path: str, repeats: int) -> list[dict]:
    runs = [(v, *best_decode(path, v, repeats)) for v in VARIANTS]
    wanted = {fr.pts for *_, kept in runs for fr in kept.values()}
    ref, first, tb = reference_frames(path, wanted)
    rows = []
    for v, cpu, n, kept in runs:
        scores = [psnr(kept[b].to_ndarray(format="rgb24"), ref[kept[b].pts]) for b in kept]
        finite = [s for s in scores if math.isfinite(s)]
        rows.append({
            "variant": v.name, "cpu_s": cpu, "ms_per_sample": cpu / len(first) * 1000, "frames_decoded": n,
            "buckets_served": len(kept), "buckets": len(first),
            "psnr_min_db": min(finite) if finite else None, "psnr_mean_db": sum(finite) / len(finite) if finite else None,
            "identical_frames": len(scores) - len(finite),
            "max_ts_shift_ms": max(float((kept[b].pts - first[b]) * tb) * 1000 for b in kept),
        })
    return rows


def sampler_modes(path: str, repeats: int) -> list[dict]:
    rows = []
    for mode, fmt in MODES:
        best = None
        for _ in range(repeats):
            c0 = time.process_time()
            info, frames = sample_video(path, fps=1.0, mode=mode, frame_format=fmt)
            cpu = time.process_time() - c0
            if best is None or cpu < best[0]:
                best = (cpu, info, frames)
        cpu, info, frames = best
        rows.append({"mode": mode, "frame_format": fmt, "decode_mode": info.decode_mode, "cpu_s": cpu,
                     "samples": len(frames), "frames_decoded": info.frames_decoded,
                     "decode_cpu_s": info.decode_cpu_s, "convert_cpu_s": info.convert_cpu_s,
                     "encode_cpu_s": info.encode_cpu_s, "video_s": info.duration_s,
                     "video_hours_per_core_hour": info.duration_s / cpu})
    base = next(r for r in rows if r["mode"] == "all")
    for r in rows:
        r["speedup_vs_all"] = base["cpu_s"] / r["cpu_s"]
    return rows


def _db(x) -> str:
    return "same" if x is None else f"{x:.1f}"


def _table(rows: list[dict], columns: list[tuple]) -> None:
    """Print `rows` under `columns` of (title, width (negative: left-aligned), cell function)."""
    def line(cells):
        print("  " + " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, (_, w, _) in zip(cells, columns)))
    line([title for title, _, _ in columns])
    for r in rows:
        line([str(fn(r)) for _, _, fn in columns])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    report = {"seconds": args.seconds, "repeats": args.repeats, "videos": {}}
    with tempfile.TemporaryDirectory() as d:
        for i, (name, kw) in enumerate(VIDEOS.items()):
            path = os.path.join(d, f"v{i}.mp4")
            t0 = time.perf_counter()
            make_video(path, args.seconds, **kw)
            print(f"\n== {name}: {args.seconds} s, {os.path.getsize(path) / 1e6:.1f} MB "
                  f"(generated in {time.perf_counter() - t0:.0f} s)")
            variants = decoder_variants(path, args.repeats)
            _table(variants, [("demux + decode", -38, lambda r: r["variant"]),
                              ("ms/sample", 9, lambda r: f"{r['ms_per_sample']:.2f}"),
                              ("frames", 6, lambda r: r["frames_decoded"]),
                              ("served", 7, lambda r: f"{r['buckets_served']}/{r['buckets']}"),
                              ("PSNR min", 8, lambda r: _db(r["psnr_min_db"])),
                              ("mean", 6, lambda r: _db(r["psnr_mean_db"])),
                              ("ts shift", 8, lambda r: f"{r['max_ts_shift_ms']:.0f}ms")])
            _, _, kept = best_decode(path, VARIANTS[0], 1)
            steps = [{"step": s, "cpu_ms": ms, "note": n}
                     for s, ms, n in frame_costs([kept[b] for b in sorted(kept)], 640, args.repeats)]
            _table(steps, [("per sampled frame", -58, lambda r: r["step"]),
                           ("CPU ms", 7, lambda r: f"{r['cpu_ms']:.2f}"), ("", -1, lambda r: r["note"])])
            modes = sampler_modes(path, args.repeats)
            _table(modes, [("sample_video", -16, lambda r: f"{r['mode']}, {r['frame_format']}"),
                           ("decoded as", -10, lambda r: r["decode_mode"]),
                           *[(k, 7, lambda r, k=k: f"{r[k + '_cpu_s' if k != 'CPU s' else 'cpu_s']:.3f}")
                             for k in ("CPU s", "decode", "convert", "encode")],
                           ("frames", 6, lambda r: r["frames_decoded"]), ("samples", 7, lambda r: r["samples"]),
                           ("vh/core-h", 9, lambda r: f"{r['video_hours_per_core_hour']:.0f}"),
                           ("vs all", 6, lambda r: f"{r['speedup_vs_all']:.2f}x")])
            report["videos"][name] = {"decoder_variants": variants, "steps_ms_per_frame": steps,
                                      "sample_video": modes}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
