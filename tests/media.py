"""Helpers that write small synthetic media files with PyAV (sampler tests, benchmark)."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image


def frame_rgb(i: int, w: int, h: int) -> np.ndarray:
    a = np.zeros((h, w, 3), np.uint8)
    a[:, :, 2] = (i * 5) % 200 + 30  # per-frame blue level
    a[: h // 4, : w // 4] = (255, 0, 0)  # red marker in the top-left corner
    return a


def make_video(path, *, n=150, w=320, h=180, rate=30, gop=30, codec="libx264", fmt=None,
               pix="yuv420p", pts=None, time_base=None, rotation=None, faststart=False,
               codec_options=None):
    """Write a test video; ``pts``/``time_base`` give explicit (VFR) timestamps."""
    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=opts) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix
        s.codec_context.gop_size = gop
        if time_base is not None:
            s.codec_context.time_base = time_base
            s.time_base = time_base
        co = dict(codec_options or {})
        if codec == "libx264":
            co = {"preset": "ultrafast", "bf": "0", "sc_threshold": "0", **co}
        if co:
            s.codec_context.options = co
        if rotation is not None:
            s.set_display_rotation(rotation)
        stamps = pts if pts is not None else list(range(n))
        for i, p in enumerate(stamps):
            f = av.VideoFrame.from_ndarray(frame_rgb(i, w, h), format="rgb24")
            f.pts = p
            if time_base is not None:
                f.time_base = time_base
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return str(path)


def make_audio_only(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        for i in range(40):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
            f.sample_rate = 44100
            f.pts = i * 1024
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return str(path)


def decode_jpeg(b: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).astype(np.int16)
