"""Decode a stored video and keep N frames per second of presentation time, safely.

Pure Python (PyAV + numpy + Pillow); no Spark dependency.  Called once per video,
typically from a Spark ``mapInPandas`` UDF, so decoding is single-threaded by default
(Spark already runs one task per core).

Sampling
--------
Frames are bucketed by PRESENTATION time, not by frame count, so variable frame rate
is handled: bucket ``k`` covers ``[k/fps, (k+1)/fps)`` seconds after the stream start
(``stream.start_time`` when the container gives it, else the first timestamp seen).
The first frame (in presentation order) of every bucket is kept; buckets without a
frame are skipped, never filled with duplicates.  Bucket arithmetic is exact integer
arithmetic on ``pts * time_base`` (``fps`` is read through its decimal repr, so
``fps=0.1`` means exactly 1/10).

Decode modes
------------
* ``"all"``: decode every frame; keep the first frame of each bucket.
* ``"keyframes"``: demux every packet but only send keyframe packets to the decoder
  (which also runs with ``skip_frame="NONKEY"``), and only the FIRST keyframe of each
  bucket: a keyframe whose bucket already has a sample is never decoded.  Buckets that
  contain frames but no keyframe produce no sample in this mode.
* ``"auto"`` (default): a cheap demux-only pass reads packet timestamps and keyframe
  flags; if every bucket that has any frame also has a keyframe, decode in
  ``"keyframes"`` mode, otherwise ``"all"``.  When keyframes start each bucket (e.g.
  30 fps with GOP 30 at fps=1) both modes return the same buckets and timestamps.
  When a keyframe lies inside a bucket but not at its start, keyframes mode returns
  that keyframe (its true ``ts_ms``) instead of the bucket's very first frame.

Output frames are upright (display-matrix / ``rotate`` tag applied; multiples of 90
degrees only, mirror matrices are ignored), corrected for non-square sample aspect
ratio, downscaled so the long side is at most ``max_side`` (never upscaled), and
JPEG-encoded with Pillow.

Safety (untrusted input)
------------------------
* Only the ``file`` protocol is allowed, and only the container demuxers listed in
  ``DecodeLimits.allowed_formats`` may be used (FFmpeg ``format_whitelist``, enforced
  after probing but BEFORE the demuxer reads its header).  Playlists (HLS ``.m3u8``,
  ``ffconcat``), image demuxers (``png_pipe``, ``jpeg_pipe``, ``image2`` ...) and
  everything else are rejected as ``not_a_video`` without ever opening files they
  reference.  MP4 data references (``enable_drefs``) stay off.
* ``width*height > max_pixels`` is rejected before decoding (and re-checked on every
  decoded frame); container duration outside ``[min_duration_s, max_duration_s]`` is
  rejected before decoding (and re-checked against observed timestamps); the wall
  clock (probing + demux pass + decode) is limited to ``time_limit_s``, checked between
  packets.  A single FFmpeg call that never returns, and the memory cap
  ``max_memory_bytes``, are only enforced by
  :func:`percolate.isolation.sample_video_isolated`, which runs this same code in a
  forked child with hard limits (what the Spark job uses).
* An allocation failure (``MemoryError``, FFmpeg ``ENOMEM``) is ``memory_limit``.
* Every problem with the file itself raises :class:`VideoRejected` with a code from
  :data:`REASON_CODES`.  Invalid ARGUMENTS raise ``ValueError``; a missing/unreadable
  path raises the usual ``OSError`` (an infrastructure problem, not a bad video).
* A stream that decodes partially (truncated, damaged packets) returns the frames it
  got; ``VideoInfo.errors`` counts packets that failed to demux/decode and frames the
  decoder flagged corrupt (those are skipped; a later frame of the same bucket may
  replace them).  Nothing decoded at all -> ``corrupt_stream``; more than
  ``max_error_fraction`` of decode attempts failed -> ``too_many_frames_failed``.

Classification of open failures: a file that FFmpeg cannot open is ``corrupt_stream``
when its first bytes carry a known video-container signature (MP4/MOV boxes, EBML
(MKV/WebM), RIFF AVI, FLV, MPEG-TS/PS, ASF, Ogg), otherwise ``not_a_video``.  So an
MP4 cut in half keeping its head (``ftyp`` but no ``moov``) is ``corrupt_stream``,
while its tail half (no header at all) is ``not_a_video``.
"""

from __future__ import annotations

import io
import math
import os
import stat
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import av
import av.error
from av.video.reformatter import VideoReformatter
import numpy as np
from PIL import Image

__all__ = [
    "REASON_CODES",
    "DEFAULT_ALLOWED_FORMATS",
    "DecodeLimits",
    "SampledFrame",
    "VideoInfo",
    "VideoRejected",
    "check_arguments",
    "sample_video",
    "stream_video",
]

from percolate.quarantine import REASON_CODES  # noqa: E402

# FFmpeg demuxer short names that may be used.  Each entry is matched against every
# comma-separated alias of the demuxer (the MP4 demuxer is "mov,mp4,m4a,3gp,3g2,mj2").
# Deliberately absent: hls, dash, concat, image2 / *_pipe image demuxers, mjpeg (raw
# JPEG stream), sdp/rtp, tee, data, lavfi...
DEFAULT_ALLOWED_FORMATS: tuple[str, ...] = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",
    "matroska", "webm",
    "avi",
    "flv",
    "mpegts",
    "mpeg",
    "asf",
    "ogg",
    "mxf",
    "ivf",
    "h264", "hevc", "m4v",
)

# Demuxers that reference other files/URLs; refused even if someone whitelists them.
_FORBIDDEN_FORMATS = frozenset(
    {"hls", "applehttp", "dash", "concat", "image2", "tee", "sdp", "rtp", "rtsp",
     "lavfi", "mpjpeg", "smjpeg"}
)


@dataclass(frozen=True)
class SampledFrame:
    frame_index: int  # index of the sample bucket: floor((pts_seconds - start) * fps)
    ts_ms: int  # presentation time in ms from the stream start (rounded)
    width: int  # of the stored JPEG (after upright rotation and downscale)
    height: int
    jpeg: bytes


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    width: int  # coded (stored) width, BEFORE rotation; see ``rotation``
    height: int
    codec: str
    avg_fps: float | None
    rotation: int  # clockwise degrees applied to make frames upright: 0/90/180/270
    decode_mode: str  # "keyframes" or "all"
    keyframe_interval_s: float | None  # largest gap between consecutive keyframes
    errors: int = 0  # failed packets + corrupt frames (skipped)
    container: str = ""  # FFmpeg demuxer name
    packets: int = 0  # video packets demuxed in the sampling pass
    frames_decoded: int = 0  # frames that came out of the decoder
    elapsed_s: float = 0.0  # wall clock of the whole call


class VideoRejected(Exception):
    """The file is not something we sample; ``reason`` is one of REASON_CODES."""

    def __init__(self, reason: str, message: str = ""):
        if reason not in REASON_CODES:
            raise ValueError(f"unknown reason code {reason!r}")
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message

    def __reduce__(self):  # picklable across Spark/multiprocessing boundaries
        return (type(self), (self.reason, self.message))


@dataclass(frozen=True)
class DecodeLimits:
    max_pixels: int = 4096 * 2304
    max_duration_s: float = 4 * 3600
    min_duration_s: float = 0.0
    time_limit_s: float = 300.0
    # memory one decode may take on top of the process it is forked from; enforced
    # (RLIMIT_AS, RLIMIT_DATA) only by percolate.isolation.sample_video_isolated
    max_memory_bytes: int = 2 * 1024 ** 3
    # a side shorter than this, as stored or once scaled to max_side, is absurd (a sliver:
    # nothing to see, and the sampled-frames expectations refuse it)
    min_side: int = 16
    # more than this fraction of decode attempts failing -> too_many_frames_failed
    max_error_fraction: float = 0.5
    allowed_formats: tuple[str, ...] = field(default=DEFAULT_ALLOWED_FORMATS)


_MODES = ("auto", "all", "keyframes")


def _is_video_signature(head: bytes) -> bool:
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


def _looks_like_playlist(head: bytes) -> bool:
    h = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return h.startswith((b"#extm3u", b"ffconcat", b"<?xml", b"<mpd", b"[playlist]"))


class _Deadline:
    __slots__ = ("t_end", "limit")

    def __init__(self, limit: float):
        self.limit = limit
        self.t_end = time.monotonic() + limit

    def check(self) -> None:
        if time.monotonic() > self.t_end:
            raise VideoRejected("decode_timeout", f"exceeded time limit of {self.limit:g}s")


def _open(path: str, head: bytes, limits: DecodeLimits):
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
        if _is_video_signature(head):
            raise VideoRejected("corrupt_stream", f"cannot open container: {e}") from None
        raise VideoRejected("not_a_video", f"not an allowed video container: {e}") from None
    except (av.error.DemuxerNotFoundError, av.error.ProtocolNotFoundError) as e:
        raise VideoRejected("not_a_video", str(e)) from None
    except (av.error.FFmpegError, EOFError, UnicodeError, OverflowError, ValueError) as e:
        reason = "corrupt_stream" if _is_video_signature(head) else "not_a_video"
        raise VideoRejected(reason, f"cannot open: {e}") from None
    fmt = container.format.name or ""
    if set(fmt.split(",")) & _FORBIDDEN_FORMATS:
        container.close()
        raise VideoRejected("not_a_video", f"container format {fmt!r} is not allowed")
    return container


def _pick_video_stream(container):
    attached = int(av.stream.Disposition.attached_pic)
    for s in container.streams.video:
        try:
            if int(s.disposition) & attached:
                continue  # cover art, not a video
        except Exception:
            pass
        return s
    return None


def _rotation_cw(frame, stream_rot_cw: int) -> int:
    """Clockwise degrees (0/90/180/270) that make this frame upright."""
    try:
        r = frame.rotation  # counterclockwise degrees from the display matrix
    except Exception:
        r = 0
    if r:
        return int(round(-float(r) / 90.0)) % 4 * 90
    return stream_rot_cw


def _stream_rotation_cw(stream) -> int:
    tag = (stream.metadata or {}).get("rotate")
    if tag:
        try:
            return int(round(float(tag) / 90.0)) % 4 * 90
        except ValueError:
            return 0
    return 0


def _fps_fraction(fps: float) -> Fraction:
    if isinstance(fps, Fraction):
        f = fps
    elif isinstance(fps, int):
        f = Fraction(fps)
    else:
        f = Fraction(repr(float(fps)))
    return f


def check_arguments(fps, mode: str, max_side: int, jpeg_quality: int, threads: int) -> Fraction:
    """Raise ValueError for invalid sampling arguments; return ``fps`` as an exact fraction."""
    if not (isinstance(fps, (int, float, Fraction)) and math.isfinite(float(fps)) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if int(max_side) < 1:
        raise ValueError("max_side must be >= 1")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError("jpeg_quality must be in 1..100")
    if int(threads) < 0:
        raise ValueError("threads must be >= 0 (0 = FFmpeg's choice)")
    return _fps_fraction(fps)


def sample_video(
    path: str,
    fps: float = 1.0,
    max_side: int = 640,
    jpeg_quality: int = 90,
    limits: DecodeLimits = DecodeLimits(),
    mode: str = "auto",
    threads: int = 1,
) -> tuple[VideoInfo, list[SampledFrame]]:
    """Sample ``fps`` frames per second of presentation time from the video at ``path``.

    Returns ``(info, frames)``; raises :class:`VideoRejected` for any bad file.
    """
    frames: list[SampledFrame] = []
    info = stream_video(path, frames.append, fps=fps, max_side=max_side, jpeg_quality=jpeg_quality,
                        limits=limits, mode=mode, threads=threads)
    return info, frames


def stream_video(
    path: str,
    sink: Callable[[SampledFrame], None],
    fps: float = 1.0,
    max_side: int = 640,
    jpeg_quality: int = 90,
    limits: DecodeLimits = DecodeLimits(),
    mode: str = "auto",
    threads: int = 1,
) -> VideoInfo:
    """Like :func:`sample_video`, but hand each frame to ``sink`` as soon as it is encoded.

    Frames come in bucket order.  If :class:`VideoRejected` is raised, the frames already
    handed over belong to a rejected video and must be discarded.
    """
    fps_q = check_arguments(fps, mode, max_side, jpeg_quality, threads)

    t_start = time.monotonic()
    deadline = _Deadline(limits.time_limit_s)
    path = os.fspath(path)
    st = os.stat(path)  # missing file -> FileNotFoundError (not a bad video)
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:  # (a pipe's size means nothing)
        raise VideoRejected("empty_file", "file has zero bytes")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if _looks_like_playlist(head):
        raise VideoRejected("not_a_video", "playlist/manifest, not a media file")

    try:
        return _sample(path, head, fps_q, int(max_side), int(jpeg_quality), limits, mode,
                       int(threads), deadline, t_start, sink)
    except VideoRejected:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except MemoryError as e:
        raise VideoRejected("memory_limit", f"out of memory: {e or type(e).__name__}") from None
    except (av.error.FFmpegError, EOFError, ValueError, OverflowError, ZeroDivisionError,
            TypeError, UnicodeError, RuntimeError, OSError, IndexError, KeyError,
            AttributeError) as e:
        # Anything unexpected from the media stack on this input is a bad stream.
        raise VideoRejected("corrupt_stream", f"{type(e).__name__}: {e}") from None


def _probe_keyframes(path, head, limits, deadline, start_pts, fps_num, fps_den, tb):
    """Demux-only pass.  Returns (use_keyframes, first_pts, last_pts)."""
    container = _open(path, head, limits)
    try:
        stream = _pick_video_stream(container)
        frame_buckets: set[int] = set()
        key_buckets: set[int] = set()
        first_pts = None
        pts_list = []
        missing_pts = False
        n = 0
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0:
                    continue
                n += 1
                if (n & 255) == 0:
                    deadline.check()
                pts = pkt.pts
                if pts is None:
                    missing_pts = True
                    continue
                pts_list.append((pts, pkt.is_keyframe))
        except MemoryError:
            raise
        except av.error.FFmpegError:
            pass  # the sampling pass will see and count this error
        if not pts_list:
            return False, None, None
        first_pts = min(p for p, _ in pts_list) if start_pts is None else start_pts
        num = tb.numerator * fps_num
        den = tb.denominator * fps_den
        for pts, key in pts_list:
            rel = pts - first_pts
            if rel < 0:
                continue
            b = (rel * num) // den
            frame_buckets.add(b)
            if key:
                key_buckets.add(b)
        last_pts = max(p for p, _ in pts_list)
        use_key = (not missing_pts) and bool(key_buckets) and frame_buckets <= key_buckets
        return use_key, first_pts, last_pts
    finally:
        container.close()


def _sample(path, head, fps_q, max_side, jpeg_quality, limits, mode, threads, deadline,
            t_start, sink):
    container = _open(path, head, limits)
    try:
        deadline.check()
        fmt = container.format.name or ""
        stream = _pick_video_stream(container)
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
            if duration_s > limits.max_duration_s or duration_s < limits.min_duration_s:
                raise VideoRejected(
                    "duration_out_of_range",
                    f"duration {duration_s:.3f}s outside "
                    f"[{limits.min_duration_s:g}, {limits.max_duration_s:g}]")

        try:
            avg_fps = float(stream.average_rate) if stream.average_rate else None
        except (ZeroDivisionError, TypeError):
            avg_fps = None
        stream_rot = _stream_rotation_cw(stream)
        sar = _sample_aspect_ratio(stream)
        min_side = min(limits.min_side, max_side)
        if width and height:
            _check_min_side(width, height, sar, max_side, min_side)
        # one reformatter per call: it caches the swscale context across frames (5x faster
        # than frame.reformat, which builds a new context every time)
        rot_cache: dict = {"sar": sar, "min_side": min_side,
                           "reformatter": VideoReformatter(),
                           "threads": threads}  # the scaler too: no thread pool per video

        fps_num, fps_den = fps_q.numerator, fps_q.denominator
        start_pts = stream.start_time  # may be None
        num = tb.numerator * fps_num
        den = tb.denominator * fps_den

        decode_mode = mode
        if mode == "auto":
            use_key, first_pts, _last = _probe_keyframes(
                path, head, limits, deadline, start_pts, fps_num, fps_den, tb)
            decode_mode = "keyframes" if use_key else "all"
            if start_pts is None:
                start_pts = first_pts
            deadline.check()

        cc.thread_count = threads
        if threads != 1:
            cc.thread_type = "AUTO"
        keyframes_only = decode_mode == "keyframes"
        if keyframes_only:
            cc.skip_frame = "NONKEY"

        max_rel_pts = None
        if limits.max_duration_s and math.isfinite(limits.max_duration_s):
            # timestamps past the limit (+1 s of slack) mean the header lied
            max_rel_pts = int((limits.max_duration_s + 1.0) * tb.denominator / tb.numerator)

        n_out = 0
        first_size = None  # (width, height) of the first sampled frame
        errors = 0
        attempts = 0
        n_packets = 0
        n_frames = 0
        last_bucket = -1
        requested_bucket = -1  # keyframes mode: highest bucket whose keyframe was sent
        last_key_pts = None
        max_key_gap = None
        last_pts_seen = None

        def emit(frame):
            nonlocal n_frames, errors, last_bucket, start_pts, last_pts_seen, n_out, first_size
            n_frames += 1
            if getattr(frame, "is_corrupt", False):
                errors += 1
                return
            pts = frame.pts
            if pts is None:
                pts = frame.dts
            if pts is None:
                errors += 1
                return
            if start_pts is None:
                start_pts = pts
            rel = pts - start_pts
            if rel < 0:
                return  # pre-roll before the stream start
            if max_rel_pts is not None and rel > max_rel_pts:
                raise VideoRejected(
                    "duration_out_of_range",
                    f"timestamp {float(rel * tb):.1f}s beyond max duration {limits.max_duration_s:g}s")
            if last_pts_seen is None or pts > last_pts_seen:
                last_pts_seen = pts
            b = (rel * num) // den
            if b <= last_bucket:
                return
            fw, fh = frame.width, frame.height
            if fw * fh > limits.max_pixels or fw <= 0 or fh <= 0:
                raise VideoRejected("absurd_dimensions", f"decoded frame {fw}x{fh}")
            last_bucket = b
            sample = _to_sample(frame, b, rel, tb, max_side, jpeg_quality,
                                _rotation_cw(frame, stream_rot), rot_cache)
            n_out += 1
            if first_size is None:
                first_size = (sample.width, sample.height)
            sink(sample)

        def decode(pkt):
            nonlocal errors, attempts
            attempts += 1
            try:
                frames = cc.decode(pkt)
            except MemoryError:
                raise
            except av.error.FFmpegError:
                errors += 1
                return False
            for fr in frames:
                emit(fr)
            return True

        try:
            for pkt in container.demux(stream):
                if pkt.size == 0:
                    continue  # demuxer's trailing flush packet; we flush below
                n_packets += 1
                if (n_packets & 15) == 0:
                    deadline.check()
                is_key = pkt.is_keyframe
                if is_key and pkt.pts is not None:
                    if last_key_pts is not None and pkt.pts > last_key_pts:
                        gap = pkt.pts - last_key_pts
                        if max_key_gap is None or gap > max_key_gap:
                            max_key_gap = gap
                    last_key_pts = pkt.pts
                if keyframes_only:
                    if not is_key:
                        continue
                    if pkt.pts is not None:
                        if start_pts is None:
                            start_pts = pkt.pts
                        rel = pkt.pts - start_pts
                        b = (rel * num) // den if rel >= 0 else -1
                        if b <= requested_bucket or b <= last_bucket:
                            continue  # bucket already served: do not decode
                        prev = requested_bucket
                        requested_bucket = b
                        if not decode(pkt):
                            requested_bucket = prev  # let a later keyframe serve it
                        continue
                decode(pkt)
        except MemoryError:
            raise
        except av.error.FFmpegError:
            errors += 1  # demuxer gave up (truncated / damaged container)
        deadline.check()
        try:
            for fr in cc.decode(None):
                emit(fr)
        except MemoryError:
            raise
        except av.error.FFmpegError:
            errors += 1

        if not n_out:
            raise VideoRejected(
                "corrupt_stream",
                f"no frame decoded ({n_packets} packets, {errors} errors)")
        if attempts and errors > limits.max_error_fraction * attempts:
            raise VideoRejected(
                "too_many_frames_failed",
                f"{errors} errors in {attempts} decode attempts")

        if duration_s is None:
            last = last_pts_seen if last_pts_seen is not None else 0
            frame_dur = (1.0 / avg_fps) if avg_fps else 0.0
            duration_s = float((last - (start_pts or 0)) * tb) + frame_dur
            if duration_s > limits.max_duration_s or duration_s < limits.min_duration_s:
                raise VideoRejected("duration_out_of_range", f"duration {duration_s:.3f}s")

        info = VideoInfo(
            duration_s=float(duration_s),
            width=width or first_size[0],
            height=height or first_size[1],
            codec=codec,
            avg_fps=avg_fps,
            rotation=rot_cache.get("first", stream_rot),
            decode_mode="keyframes" if keyframes_only else "all",
            keyframe_interval_s=(float(max_key_gap * tb) if max_key_gap is not None else None),
            errors=errors,
            container=fmt,
            packets=n_packets,
            frames_decoded=n_frames,
            elapsed_s=time.monotonic() - t_start,
        )
        return info
    finally:
        container.close()


def _sample_aspect_ratio(stream):
    for obj in (stream, stream.codec_context):
        try:
            sar = obj.sample_aspect_ratio
        except Exception:
            sar = None
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            # guard against absurd values in hostile headers
            if Fraction(1, 16) <= sar <= 16:
                return sar
    return None


def _output_size(w: int, h: int, sar, max_side: int) -> tuple[int, int]:
    """Stored size of a sampled frame: display aspect, long side at most ``max_side``."""
    # display width accounts for non-square pixels (anamorphic storage)
    dw = float(w)
    if sar is not None and sar.numerator > 0 and sar.denominator > 0 and sar != 1:
        dw = w * float(sar)
    scale = min(1.0, max_side / max(dw, float(h)))
    return max(1, int(round(dw * scale))), max(1, int(round(h * scale)))


def _check_min_side(w: int, h: int, sar, max_side: int, min_side: int) -> None:
    tw, th = _output_size(w, h, sar, max_side)
    if min(w, h, tw, th) < min_side:
        raise VideoRejected("absurd_dimensions", f"{w}x{h} (sampled as {tw}x{th}): a side under {min_side} px")


def _to_sample(frame, bucket, rel, tb, max_side, quality, rot_cw, rot_cache):
    rot_cache.setdefault("first", rot_cw)
    w, h = frame.width, frame.height
    _check_min_side(w, h, rot_cache.get("sar"), max_side, rot_cache["min_side"])
    tw, th = _output_size(w, h, rot_cache.get("sar"), max_side)
    if (tw, th) == (w, h) and frame.format.name == "rgb24":
        rgb = frame
    else:
        rgb = rot_cache["reformatter"].reformat(frame, width=tw, height=th, format="rgb24",
                                                interpolation="BILINEAR", threads=rot_cache["threads"])
    arr = rgb.to_ndarray()
    if rot_cw:
        arr = np.ascontiguousarray(np.rot90(arr, k=-(rot_cw // 90)))
    img = Image.fromarray(arr, "RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    ts_ms = int(round(rel * tb * 1000))
    return SampledFrame(frame_index=int(bucket), ts_ms=ts_ms, width=img.width,
                        height=img.height, jpeg=buf.getvalue())
