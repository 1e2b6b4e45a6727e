"""Opening an untrusted container and reading its facts before anything is decoded.

Only the `file` protocol and the demuxers of `DecodeLimits.allowed_formats` may be used
(FFmpeg's `format_whitelist`, enforced after probing but before the demuxer reads its
header); MP4 data references stay off. A file FFmpeg cannot open is `corrupt_stream` when
its first bytes carry a known video-container signature, otherwise `not_a_video`: an MP4
cut in half keeping its head is `corrupt_stream`, its tail half `not_a_video`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error

from percolate.video.limits import FORBIDDEN_FORMATS, DecodeLimits, VideoRejected


def is_video_signature(head: bytes) -> bool:
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide",
                                         b"skip", b"pnot", b"uuid"):
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska / WebM
        return True
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        return True
    if head.startswith((b"FLV\x01", b"OggS", b"\x00\x00\x01\xba",
                        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", b"DKIF")):
        return True
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return True  # MPEG-TS sync bytes
    return False


def looks_like_playlist(head: bytes) -> bool:
    h = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return h.startswith((b"#extm3u", b"ffconcat", b"<?xml", b"<mpd", b"[playlist]"))


class Deadline:
    """The CPU-time limit of one decode (this process's `time.process_time`), checked between
    packets: a machine busy with other work slows the decode's wall clock, not its CPU."""

    __slots__ = ("t_end", "limit")

    def __init__(self, limit: float):
        self.limit = limit
        self.t_end = time.process_time() + limit

    def check(self) -> None:
        if time.process_time() > self.t_end:
            raise VideoRejected("decode_timeout", f"exceeded the limit of {self.limit:g} CPU seconds")


def open_container(path: str, head: bytes, limits: DecodeLimits):
    """The container at `path`, opened under the allowed protocols and demuxers."""
    options = {
        "protocol_whitelist": "file",
        "format_whitelist": ",".join(limits.allowed_formats),
        "enable_drefs": "0",
        "use_absolute_path": "0",
    }
    try:
        container = av.open(path, mode="r", options=options, metadata_errors="replace")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except MemoryError as e:
        raise VideoRejected("memory_limit", f"out of memory opening the container: {e}") from None
    except av.error.ArgumentError as e:  # EINVAL: typically the format whitelist
        if is_video_signature(head):
            raise VideoRejected("corrupt_stream", f"cannot open container: {e}") from None
        raise VideoRejected("not_a_video", f"not an allowed video container: {e}") from None
    except (av.error.DemuxerNotFoundError, av.error.ProtocolNotFoundError) as e:
        raise VideoRejected("not_a_video", str(e)) from None
    except (av.error.FFmpegError, EOFError, UnicodeError, OverflowError, ValueError) as e:
        reason = "corrupt_stream" if is_video_signature(head) else "not_a_video"
        raise VideoRejected(reason, f"cannot open: {e}") from None
    fmt = container.format.name or ""
    if set(fmt.split(",")) & FORBIDDEN_FORMATS:
        container.close()
        raise VideoRejected("not_a_video", f"container format {fmt!r} is not allowed")
    return container


def pick_video_stream(container):
    """The first video stream that is not cover art, or None."""
    attached = int(av.stream.Disposition.attached_pic)
    for s in container.streams.video:
        try:
            if int(s.disposition) & attached:
                continue
        except Exception:
            pass
        return s
    return None


def frame_rotation_cw(frame, stream_rot_cw: int) -> int:
    """Clockwise degrees (0/90/180/270) that make this frame upright."""
    try:
        r = frame.rotation  # counterclockwise degrees from the display matrix
    except Exception:
        r = 0
    if r:
        return int(round(-float(r) / 90.0)) % 4 * 90
    return stream_rot_cw


def stream_rotation_cw(stream) -> int:
    tag = (stream.metadata or {}).get("rotate")
    if tag:
        try:
            return int(round(float(tag) / 90.0)) % 4 * 90
        except ValueError:
            return 0
    return 0


def sample_aspect_ratio(stream) -> Fraction | None:
    for obj in (stream, stream.codec_context):
        try:
            sar = obj.sample_aspect_ratio
        except Exception:
            sar = None
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            if Fraction(1, 16) <= sar <= 16:  # guard against absurd values in hostile headers
                return sar
    return None


def output_size(w: int, h: int, sar, max_side: int) -> tuple[int, int]:
    """Stored size of a sampled frame: display aspect, long side at most `max_side`."""
    dw = float(w)  # display width accounts for non-square pixels (anamorphic storage)
    if sar is not None and sar.numerator > 0 and sar.denominator > 0 and sar != 1:
        dw = w * float(sar)
    scale = min(1.0, max_side / max(dw, float(h)))
    return max(1, int(round(dw * scale))), max(1, int(round(h * scale)))


def check_min_side(w: int, h: int, sar, max_side: int, min_side: int) -> None:
    tw, th = output_size(w, h, sar, max_side)
    if min(w, h, tw, th) < min_side:
        raise VideoRejected("absurd_dimensions", f"{w}x{h} (sampled as {tw}x{th}): a side under {min_side} px")


@dataclass
class StreamFacts:
    """What the container says of its video stream, checked against the limits."""

    container_format: str
    stream: object
    codec: str
    width: int
    height: int
    time_base: Fraction
    duration_s: float | None
    avg_fps: float | None
    rotation_cw: int
    sar: Fraction | None


def check_stream(container, limits: DecodeLimits, max_side: int) -> StreamFacts:
    """The video stream's facts; VideoRejected when they break a limit (before decoding)."""
    fmt = container.format.name or ""
    stream = pick_video_stream(container)
    if stream is None:
        raise VideoRejected("no_video_stream", f"no video stream in {fmt!r} container")
    cc = stream.codec_context
    if cc is None:
        raise VideoRejected("unsupported_codec", "no decoder for the video stream")
    codec = cc.name or ""
    try:
        av.codec.Codec(codec, "r")
    except Exception:
        raise VideoRejected("unsupported_codec", f"no decoder for codec {codec!r}") from None

    width, height = int(cc.width or 0), int(cc.height or 0)
    if width * height > limits.max_pixels:
        raise VideoRejected("absurd_dimensions", f"{width}x{height} > {limits.max_pixels} pixels")
    if (width or height) and (width <= 0 or height <= 0):
        raise VideoRejected("absurd_dimensions", f"{width}x{height}")

    tb = stream.time_base
    if tb is None or tb.numerator <= 0 or tb.denominator <= 0:
        raise VideoRejected("corrupt_stream", f"bad stream time base {tb!r}")

    duration_s = None
    if container.duration is not None and container.duration > 0:
        duration_s = container.duration / 1_000_000
    elif stream.duration is not None and stream.duration > 0:
        duration_s = float(stream.duration * tb)
    if duration_s is not None:
        check_duration(duration_s, limits)
    try:
        avg_fps = float(stream.average_rate) if stream.average_rate else None
    except (ZeroDivisionError, TypeError):
        avg_fps = None
    sar = sample_aspect_ratio(stream)
    if width and height:
        check_min_side(width, height, sar, max_side, min(limits.min_side, max_side))
    return StreamFacts(fmt, stream, codec, width, height, tb, duration_s, avg_fps, stream_rotation_cw(stream), sar)


def check_duration(duration_s: float, limits: DecodeLimits) -> None:
    if duration_s > limits.max_duration_s or duration_s < limits.min_duration_s:
        raise VideoRejected("duration_out_of_range", f"duration {duration_s:.3f}s outside "
                                                     f"[{limits.min_duration_s:g}, {limits.max_duration_s:g}]")


@dataclass(frozen=True)
class BucketPlan:
    """What the demux-only pass learnt: which buckets keyframes serve, and each bucket's first frame."""

    keyframes_serve: bool  # every bucket that has a frame also has a keyframe
    first_pts: int | None  # the first timestamp, for a stream that gives no start time
    # the smallest pts of each bucket; None when a packet had no pts (then nothing may be skipped)
    bucket_first_pts: frozenset[int] | None


def plan_buckets(path, head, limits, deadline, start_pts, bucket_of) -> BucketPlan:
    """A demux-only pass over the video packets' timestamps and keyframe flags."""
    container = open_container(path, head, limits)
    try:
        stream = pick_video_stream(container)
        pts_list, missing_pts, n = [], False, 0
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0:
                    continue
                n += 1
                if (n & 255) == 0:
                    deadline.check()
                if pkt.pts is None:
                    missing_pts = True
                    continue
                pts_list.append((pkt.pts, pkt.is_keyframe))
        except MemoryError:
            raise
        except av.error.FFmpegError:
            pass  # the sampling pass will see and count this error
        if not pts_list:
            return BucketPlan(False, None, None)
        first_pts = min(p for p, _ in pts_list) if start_pts is None else start_pts
        first_of: dict[int, int] = {}  # bucket -> its smallest pts
        key_buckets: set[int] = set()
        for pts, key in pts_list:
            if pts - first_pts < 0:
                continue
            b = bucket_of(pts - first_pts)
            if b not in first_of or pts < first_of[b]:
                first_of[b] = pts
            if key:
                key_buckets.add(b)
        use_key = (not missing_pts) and bool(key_buckets) and first_of.keys() <= key_buckets
        return BucketPlan(use_key, first_pts, None if missing_pts else frozenset(first_of.values()))
    finally:
        container.close()
