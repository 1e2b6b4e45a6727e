"""The isolated decode's pipe: its framing, and what the parent accepts from its child,
every message checked (`Reader`).

The child parses hostile bytes, so the parent treats what it sends as hostile too: a frame
must be a JPEG (or raw RGB) of the size it states, within the sampler's `max_side`, at a
bucket index strictly above the previous one; `VideoInfo` is a JSON object of known fields,
each typed and bounded; a scored frame's score and location must lie in [0, 1] and its FLOPs
be a count (or NaN: unknown). Anything else raises `BadDecoderOutput`, which the parent turns into
the `bad_decoder_output` quarantine reason (`percolate.video.isolation`).
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from dataclasses import fields

from percolate.video.limits import DECODE_MODES, DecodeLimits, SampledFrame, VideoInfo, frame_cap

HEADER = struct.Struct(">cI")  # message kind, payload length
FRAME = struct.Struct(">iqii")  # frame_index, ts_ms, width, height; the JPEG (b"F") or RGB bytes (b"G") follow
# b"K", a scored frame (percolate.video.frame_output.FrameScorer): FRAME, then score, loc_x, loc_y,
# flops, then the JPEG when the scorer kept the frame (nothing when it did not)
SCORES = struct.Struct(">dddd")

MAX_TEXT_MESSAGE = 64 * 1024  # VideoInfo, a rejection or an error, as JSON
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length
_INFO_FIELDS = {f.name: f for f in fields(VideoInfo)}
_MAX_COUNT = 1 << 40
_READ_CHUNK = 1 << 20
_CPU_CHECK_S = 1.0  # how often the parent looks at a silent child's CPU time
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BadDecoderOutput(Exception):
    """The decoding process sent something malformed."""


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header; BadDecoderOutput when it is not a JPEG."""
    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
        raise BadDecoderOutput(f"a frame that is not a JPEG (starts {data[:8].hex() or 'empty'})")
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise BadDecoderOutput(f"a JPEG with a broken marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or the scan before any frame header
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2:
            raise BadDecoderOutput(f"a JPEG segment of length {length}")
        if marker in _SOF:
            if i + 9 > n:
                break
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        i += 2 + length
    raise BadDecoderOutput("a JPEG without a frame header")


def check_frame(kind: bytes, index: int, ts_ms: int, width: int, height: int, data: bytes, *,
                last_index: int | None, max_side: int, max_ts_ms: int) -> None:
    """One frame message, against the previous one and the sampler's arguments."""
    if last_index is not None and index <= last_index:
        raise BadDecoderOutput(f"frame index {index} after {last_index}: indexes must strictly increase")
    if index < 0 or not 0 <= ts_ms <= max_ts_ms:
        raise BadDecoderOutput(f"frame index {index} at {ts_ms} ms: out of range")
    if not (1 <= width <= max_side and 1 <= height <= max_side):
        raise BadDecoderOutput(f"a {width}x{height} frame: sides must be within 1..{max_side}")
    if kind == b"G":
        if len(data) != 3 * width * height:
            raise BadDecoderOutput(f"{len(data)} bytes for a {width}x{height} RGB frame")
        return
    if kind == b"K" and not data:  # a scored frame whose pixels were not kept
        return
    if jpeg_size(data) != (width, height):
        got = jpeg_size(data)
        raise BadDecoderOutput(f"a JPEG of {got[0]}x{got[1]} sent as {width}x{height}")


def check_scores(values: tuple[float, float, float, float]) -> None:
    """A scored frame's (score, loc_x, loc_y, flops)."""
    score, loc_x, loc_y, flops = values
    if not all(0.0 <= v <= 1.0 for v in (score, loc_x, loc_y)):  # NaN fails too
        raise BadDecoderOutput(f"a frame scored {score!r} at ({loc_x!r}, {loc_y!r}): each must lie in [0, 1]")
    if not (math.isnan(flops) or 0.0 <= flops < 1e15):
        raise BadDecoderOutput(f"a frame scored with {flops!r} FLOPs")


def parse_json(payload: bytes, what: str) -> dict:
    if len(payload) > MAX_TEXT_MESSAGE:
        raise BadDecoderOutput(f"{what}: {len(payload)} bytes of JSON (at most {MAX_TEXT_MESSAGE})")
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadDecoderOutput(f"{what}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadDecoderOutput(f"{what}: not a JSON object")
    return value


def parse_info(payload: bytes, *, max_duration_s: float) -> VideoInfo:
    """`VideoInfo` from the child's JSON: known fields only, each typed and bounded."""
    raw = parse_json(payload, "video info")
    if set(raw) != set(_INFO_FIELDS):
        extra, missing = sorted(set(raw) - set(_INFO_FIELDS)), sorted(set(_INFO_FIELDS) - set(raw))
        raise BadDecoderOutput(f"video info: unexpected fields {extra[:5]}, missing {missing[:5]}")

    def number(name: str, lo: float, hi: float, *, integer: bool = False, optional: bool = False):
        v = raw[name]
        if v is None and optional:
            return None
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type or not math.isfinite(v) or not lo <= v <= hi:
            raise BadDecoderOutput(f"video info: {name}={str(v)[:40]!r} is not a number within {lo}..{hi}")
        return v

    def text(name: str, choices=None) -> str:
        v = raw[name]
        if not isinstance(v, str) or len(v) > 64 or (choices is not None and v not in choices):
            raise BadDecoderOutput(f"video info: {name}={str(v)[:40]!r} is not an expected string")
        return v

    return VideoInfo(
        duration_s=number("duration_s", 0, max_duration_s * 2 + 60),
        width=number("width", 1, 1 << 16, integer=True), height=number("height", 1, 1 << 16, integer=True),
        codec=text("codec"), avg_fps=number("avg_fps", 0, 1e6, optional=True),
        rotation=number("rotation", 0, 270, integer=True), decode_mode=text("decode_mode", DECODE_MODES),
        keyframe_interval_s=number("keyframe_interval_s", 0, 1e9, optional=True),
        errors=number("errors", 0, _MAX_COUNT, integer=True), container=text("container"),
        packets=number("packets", 0, _MAX_COUNT, integer=True),
        frames_decoded=number("frames_decoded", 0, _MAX_COUNT, integer=True),
        elapsed_s=number("elapsed_s", 0, 1e9), decode_cpu_s=number("decode_cpu_s", 0, 1e9),
        convert_cpu_s=number("convert_cpu_s", 0, 1e9), encode_cpu_s=number("encode_cpu_s", 0, 1e9),
        score_cpu_s=number("score_cpu_s", 0, 1e9),
    )


class TooManyFrames(Exception):
    """More frames or bytes than the per-video cap."""


class OverCpu(Exception):
    """A silent child past its CPU-time limit (one FFmpeg call that never returns)."""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (0 when unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return 0.0


class Reader:
    """The parent's side of the pipe: frames checked and handed to the sink as they arrive,
    the child's final word (`S` sandbox ready, then frames, then `I`, `R` or `E`) kept; the
    child's CPU time looked at every second (`OverCpu` past `cpu_limit_s`)."""

    def __init__(self, sink, pid: int, *, fps, max_side: int, limits: DecodeLimits, cpu_limit_s: float,
                 scored: bool = False):
        self.sink, self.max_side = sink, int(max_side)
        self.frame_kinds = b"K" if scored else b"FG"  # with a scorer, every frame comes scored
        self.max_frames, self.max_bytes = frame_cap(limits, fps), int(limits.max_sampled_bytes)
        self.max_ts_ms = int(float(limits.max_duration_s) * 2000) + 60_000
        self.max_info_duration = float(limits.max_duration_s)
        self.max_frame_message = FRAME.size + 3 * self.max_side * self.max_side + 65536
        self.frames = self.bytes = 0
        self.last_index: int | None = None
        self.confined: bool | None = None  # the child's first message says whether it could confine itself
        self.pid = pid  # the child, whose CPU time is watched while it is silent
        self.cpu_limit, self.limit_s = cpu_limit_s, float(limits.time_limit_s)
        self.final: tuple[bytes, bytes] | None = None

    def read(self, fd: int, kill_at: float) -> bool:
        """Read until the child's final word or the pipe's end (False), or until `kill_at`
        passes (True)."""
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        buf = bytearray()
        next_check = time.monotonic() + _CPU_CHECK_S
        while True:
            now = time.monotonic()
            remaining = kill_at - now
            if remaining <= 0:
                return True
            if now >= next_check:  # silent or not: a child may send frames and spin between them
                next_check = now + _CPU_CHECK_S
                if self.pid and _cpu_seconds(self.pid) > self.cpu_limit:
                    raise OverCpu(f"killed past its limit of {self.limit_s:g} CPU seconds")
            if not poller.poll(max(1, int(min(remaining, _CPU_CHECK_S) * 1000))):
                continue
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                if buf:
                    raise BadDecoderOutput(f"{len(buf)} bytes of an unfinished message")
                return False
            buf += chunk
            while len(buf) >= HEADER.size:
                kind, size = HEADER.unpack_from(buf)
                self._check_header(kind, size)
                if len(buf) < HEADER.size + size:
                    break
                payload = bytes(buf[HEADER.size:HEADER.size + size])
                del buf[:HEADER.size + size]
                self._take(kind, payload)
                if self.final is not None:  # its last word: nothing more is read
                    if buf:
                        raise BadDecoderOutput(f"{len(buf)} bytes after the child's final word")
                    return False

    def _check_header(self, kind: bytes, size: int) -> None:
        if self.final is not None:
            raise BadDecoderOutput(f"a message ({kind!r}) after the child's final word")
        if kind not in b"SXFGKIRE" or len(kind) != 1:
            raise BadDecoderOutput(f"an unknown message kind {kind!r}")
        if self.confined is None and kind not in (b"S", b"X"):
            raise BadDecoderOutput(f"a {kind!r} message before the sandbox report")
        if kind in (b"S", b"X") and self.confined is not None:
            raise BadDecoderOutput("a second sandbox report")
        limit = self.max_frame_message if kind in (b"F", b"G", b"K") else MAX_TEXT_MESSAGE
        if size > limit:
            raise BadDecoderOutput(f"a {kind.decode(errors='replace')} message of {size} bytes (at most {limit})")

    def _take(self, kind: bytes, payload: bytes) -> None:
        if kind == b"S":
            self.confined = True
        elif kind == b"X":  # set-up of the sandbox failed: this machine's problem, not the video's
            self.confined = False
            self.final = (kind, payload)
        elif kind in (b"F", b"G", b"K"):
            if kind not in self.frame_kinds:
                raise BadDecoderOutput(f"a {kind.decode()} frame message where only "
                                       f"{self.frame_kinds.decode()} may come")
            head = FRAME.size + (SCORES.size if kind == b"K" else 0)
            if len(payload) < head:
                raise BadDecoderOutput(f"a frame message of {len(payload)} bytes")
            index, ts_ms, width, height = FRAME.unpack_from(payload)
            scores = SCORES.unpack_from(payload, FRAME.size) if kind == b"K" else None
            if scores is not None:
                check_scores(scores)
            data = payload[head:]
            check_frame(kind, index, ts_ms, width, height, data, last_index=self.last_index,
                        max_side=self.max_side, max_ts_ms=self.max_ts_ms)
            self.last_index = index
            self.frames += 1
            self.bytes += len(data)
            if self.frames > self.max_frames or self.bytes > self.max_bytes:
                raise TooManyFrames(f"more than {self.max_frames} sampled frames or {self.max_bytes} bytes "
                               f"(at frame {self.frames}, {self.bytes} bytes)")
            self.sink(SampledFrame(frame_index=index, ts_ms=ts_ms, width=width, height=height,
                                   jpeg=data if kind in (b"F", b"K") else b"", rgb=data if kind == b"G" else None,
                                   scores=scores))
        else:  # I, R, E: the child's final word
            self.final = (kind, payload)
