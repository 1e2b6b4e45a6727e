"""Pieces of `bench_sampler.py`: benchmark videos, FFmpeg decoder variants, per-step costs.

Every figure is CPU seconds of this process (`time.process_time`), the best of `repeats`
runs, so it reads per core and is less noisy than wall time on a shared machine.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image


def make_video(path: str, seconds: int, w: int = 640, h: int = 360, rate: int = 30, gop: int = 30,
               bframes: int | None = None, content: str = "call") -> None:
    """A seeded H.264 mp4: `content` "call" (a moving person over a room, sensor noise) or
    "share" (a static slide with a moving cursor and a line of text appearing)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    if content == "call":
        bg = np.stack([xx * 200 // w + 30, yy * 180 // h + 40, (xx + yy) * 120 // (w + h) + 60],
                      axis=-1).astype(np.int16)
        noise = rng.integers(-6, 7, (8, h, w, 3), dtype=np.int16)
    else:
        bg = np.full((h, w, 3), 245, np.int16)
        for r in range(h // 10, h - h // 10, max(h // 24, 8)):  # lines of "text"
            bg[r:r + max(h // 80, 2), w // 10:w // 10 + int(rng.integers(w // 3, w * 3 // 4))] = 40
        noise = np.zeros((1, h, w, 3), np.int16)
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        # scenecut off so keyframes stay exactly `gop` apart; B-frames: x264's default unless given
        opts = {"preset": "veryfast", "sc_threshold": "0", "crf": "23", "keyint_min": str(gop)}
        if bframes is not None:
            opts["bf"] = str(bframes)
        s.codec_context.options = opts
        for i in range(seconds * rate):
            a = bg + noise[i % len(noise)]
            if content == "call":
                cx = int(w / 2 + w / 5 * np.sin(i / 25.0))
                cy = int(h / 2 + h / 8 * np.cos(i / 17.0))
                a[max(cy - h // 4, 0):cy + h // 4, max(cx - w // 10, 0):cx + w // 10] = (200, 150, 120)
                a[max(cy - h // 3, 0):cy - h // 4, max(cx - w // 16, 0):cx + w // 16] = (60, 40, 30)
            else:
                cx, cy = int(w / 2 + w / 3 * np.sin(i / 40.0)), int(h / 2 + h / 3 * np.cos(i / 31.0))
                a[cy:cy + 12, cx:cx + 8] = 0  # the cursor
                a[h - h // 8:h - h // 8 + 6, w // 10:w // 10 + (i * 3) % (w * 8 // 10)] = (20, 20, 160)
            f = av.VideoFrame.from_ndarray(np.clip(a, 0, 255).astype(np.uint8), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@dataclass
class Variant:
    """One way of running FFmpeg's decoder over a whole file, keeping the first frame of each bucket."""

    name: str
    skip_frame: str = "DEFAULT"
    options: dict = field(default_factory=dict)  # AVCodecContext options, applied when it opens
    threads: int = 1
    keyframe_packets_only: bool = False


VARIANTS = (
    Variant("all (today's full decode)"),
    Variant("all, 2 threads", threads=2),
    Variant("all, flags2=fast", options={"flags2": "+fast"}),
    Variant("all, skip_loop_filter=noref", options={"skip_loop_filter": "noref"}),
    Variant("all, skip_loop_filter=all", options={"skip_loop_filter": "all"}),
    Variant("all, skip_idct=noref", options={"skip_idct": "noref"}),
    Variant("nonref (skip_frame=NONREF)", skip_frame="NONREF"),
    Variant("nonref, skip_loop_filter=all", skip_frame="NONREF", options={"skip_loop_filter": "all"}),
    Variant("keyframes (skip_frame=NONKEY)", skip_frame="NONKEY", keyframe_packets_only=True),
)


def decode_pass(path: str, v: Variant, fps: int = 1) -> tuple[float, int, dict]:
    """(CPU s, frames decoded, {bucket: frame}) of one demux+decode pass under `v`."""
    c0 = time.process_time()
    kept: dict = {}
    n = 0
    with av.open(path) as c:
        st = c.streams.video[0]
        cc = st.codec_context
        cc.thread_count = v.threads
        if v.threads != 1:
            cc.thread_type = "AUTO"
        if v.options:
            cc.options = dict(v.options)
        cc.skip_frame = v.skip_frame
        start, tb = st.start_time or 0, st.time_base
        for pkt in c.demux(st):
            if v.keyframe_packets_only and pkt.size and not pkt.is_keyframe:
                continue
            for fr in cc.decode(pkt if pkt.size else None):
                n += 1
                b = int((fr.pts - start) * tb * fps)
                if b not in kept:
                    kept[b] = fr
    return time.process_time() - c0, n, kept


def best_decode(path: str, v: Variant, repeats: int) -> tuple[float, int, dict]:
    runs = [decode_pass(path, v) for _ in range(repeats)]
    return min(r[0] for r in runs), runs[0][1], runs[0][2]


def reference_frames(path: str, pts_wanted: set[int]) -> tuple[dict, dict, object]:
    """A plain full decode: ({pts: rgb array} for `pts_wanted`, {bucket: its first pts}, time base)."""
    out, first = {}, {}
    with av.open(path) as c:
        st = c.streams.video[0]
        start, tb = st.start_time or 0, st.time_base
        for fr in c.decode(st):
            first.setdefault(int((fr.pts - start) * tb), fr.pts)
            if fr.pts in pts_wanted:
                out[fr.pts] = fr.to_ndarray(format="rgb24")
    return out, first, tb


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def frame_costs(frames: list, max_side: int, repeats: int) -> list[tuple[str, float, str]]:
    """(step, CPU ms per frame, note) for conversion, resize and JPEG options on decoded frames."""
    from percolate.video.probe import output_size

    w, h = frames[0].width, frames[0].height
    tw, th = output_size(w, h, None, max_side)
    rows = []

    ref = [f.to_ndarray(format="rgb24") for f in frames]
    if (tw, th) != (w, h):  # the quality reference: a high-quality resize of the full-size RGB
        ref = [np.asarray(Image.fromarray(a).resize((tw, th), Image.LANCZOS)) for a in ref]
    for interp in ("BILINEAR", "FAST_BILINEAR", "AREA", "BICUBIC"):
        r = VideoReformatter()
        ms = per_frame_list(frames, lambda f: r.reformat(f, width=tw, height=th, format="rgb24", interpolation=interp), repeats)
        quality = np.mean([psnr(r.reformat(f, width=tw, height=th, format="rgb24",
                                           interpolation=interp).to_ndarray(), a) for f, a in zip(frames, ref)])
        rows.append((f"yuv->rgb{' + resize' if (tw, th) != (w, h) else ''} ({interp}, one swscale call)",
                     ms, f"{w}x{h}->{tw}x{th}, PSNR {quality:.1f} dB vs reference"))
    r = VideoReformatter()
    rgb = [r.reformat(f, width=tw, height=th, format="rgb24", interpolation="BILINEAR") for f in frames]
    rows.append(("to_ndarray", per_frame_list(rgb, lambda f: f.to_ndarray(), repeats), ""))
    arrays = [f.to_ndarray() for f in rgb]
    for label, kw in (("quality 90 (today)", dict(quality=90)), ("quality 90, optimize=False", dict(quality=90, optimize=False)),
                      ("quality 90, 4:4:4", dict(quality=90, subsampling=0)),
                      ("quality 80", dict(quality=80)), ("quality 75", dict(quality=75))):
        blobs = [_jpeg(a, kw) for a in arrays]
        q = np.mean([psnr(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")), a) for b, a in zip(blobs, arrays)])
        rows.append((f"JPEG encode, {label}", per_frame_list(arrays, lambda a, kw=kw: _jpeg(a, kw), repeats),
                     f"{np.mean([len(b) for b in blobs]) / 1024:.1f} KiB, PSNR {q:.1f} dB"))
    blobs = [_jpeg(a, dict(quality=90)) for a in arrays]
    rows.append(("JPEG decode (the next stage's)", per_frame_list(
        blobs, lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")), repeats), "quality 90"))
    return rows


def per_frame_list(items: list, fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        for x in items:
            fn(x)
        best = min(best, time.process_time() - c0)
    return best / len(items) * 1000


def _jpeg(a: np.ndarray, kw: dict) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, "RGB").save(buf, format="JPEG", **kw)
    return buf.getvalue()
