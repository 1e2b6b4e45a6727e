"""What the isolated decode's parent accepts from its child: every message checked.

The child parses hostile bytes, so the parent treats what it sends as hostile too: a frame
must be a JPEG (or raw RGB) of the size it states, within the sampler's `max_side`, at a
bucket index strictly above the previous one; `VideoInfo` is a JSON object of known fields,
each typed and bounded. Anything else raises `BadDecoderOutput`, which the parent turns into
the `bad_decoder_output` quarantine reason (`percolate.video.isolation`).
"""

from __future__ import annotations

import json
import math
from dataclasses import fields

from percolate.video.limits import DECODE_MODES, VideoInfo

MAX_TEXT_MESSAGE = 64 * 1024  # VideoInfo, a rejection or an error, as JSON
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length
_INFO_FIELDS = {f.name: f for f in fields(VideoInfo)}
_MAX_COUNT = 1 << 40


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
    if jpeg_size(data) != (width, height):
        got = jpeg_size(data)
        raise BadDecoderOutput(f"a JPEG of {got[0]}x{got[1]} sent as {width}x{height}")


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
    )
