"""Helpers that write small synthetic media files with PyAV (sampler tests, benchmark)."""

from __future__ import annotations

import io
import os
import struct
from fractions import Fraction

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
    """Write a test video; `pts`/`time_base` give explicit (VFR) timestamps."""
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


# ---- hostile files, made cheaply ------------------------------------------------------------

def make_claimed_size_mjpeg(path, w=16000, h=16000, n=3, fmt="avi"):
    """MJPEG whose container AND JPEG headers claim `w` x `h` pixels, around a 16x16 image:
    a few KB on disk, never the gigabyte a real frame of that size would take."""
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buf, "JPEG")
    jpeg = bytearray(buf.getvalue())
    sof = jpeg.find(b"\xff\xc0")  # baseline start-of-frame: length, precision, height, width
    struct.pack_into(">HH", jpeg, sof + 5, h, w)
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("mjpeg", rate=1)
        s.width, s.height, s.pix_fmt = w, h, "yuvj420p"
        for k in range(n):  # packets are muxed as they are: no encoder ever sees the size
            pk = av.Packet(bytes(jpeg))
            pk.pts = pk.dts = k
            pk.stream = s
            pk.is_keyframe = True
            c.mux(pk)
    return str(path)


def make_sparse_long(path, hours=10.0):
    """Three frames, the last one `hours` after the first: a video that long, in 3 KB."""
    return make_video(path, time_base=Fraction(1, 1000), pts=[0, 1000, int(hours * 3600 * 1000)])


def make_unknown_codec_avi(path):
    """An AVI whose video stream names a codec (FourCC) no decoder knows."""
    tmp = str(path) + ".src.avi"
    make_video(tmp, codec="mjpeg", pix="yuvj420p", fmt="avi", n=30)
    with open(tmp, "rb") as fh:
        data = fh.read()
    os.unlink(tmp)
    with open(path, "wb") as fh:
        fh.write(data.replace(b"MJPG", b"XQZ7"))
    return str(path)


def truncate(src, dst, keep: float | int):
    """The first `keep` bytes (or fraction) of `src`."""
    with open(src, "rb") as fh:
        data = fh.read()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    with open(dst, "wb") as fh:
        fh.write(data[:n])
    return str(dst)


def zero_payload(src, dst, from_fraction: float | None = None, offset: int = 204):
    """`src` with its media data zeroed: from `offset` bytes into `mdat`, or from
    `from_fraction` of the way through it."""
    with open(src, "rb") as fh:
        d = bytearray(fh.read())
    j = d.find(b"mdat")
    cut = j + int((len(d) - j) * from_fraction) if from_fraction is not None else j + offset
    d[cut:] = bytes(len(d) - cut)
    with open(dst, "wb") as fh:
        fh.write(bytes(d))
    return str(dst)


def reencode(src, dst, codec, *, fmt=None, pix="yuv420p", gop=30, codec_options=None):
    """Every frame of `src` encoded again with `codec` (same frame rate and count)."""
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        rate = stream.average_rate
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(stream)]
    h, w = frames[0].shape[:2]
    with av.open(str(dst), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix
        s.codec_context.gop_size = gop
        if codec_options:
            s.codec_context.options = dict(codec_options)
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts = i
            for pk in s.encode(f):
                out.mux(pk)
        for pk in s.encode():
            out.mux(pk)
    return str(dst), len(frames)
