"""What a decode may do and what it returns: limits, results and the rejection error.

Every problem with the file itself raises `VideoRejected` with a reason code from
`percolate.core.reasons`; invalid arguments raise `ValueError`; a missing or unreadable
path raises the usual `OSError` (an infrastructure problem, not a bad video).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from percolate.core.reasons import REASON_CODES

# FFmpeg demuxer short names that may be used. Each entry is matched against every
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

# Demuxers that reference other files/URLs; refused even if someone allows them.
FORBIDDEN_FORMATS = frozenset(
    {"hls", "applehttp", "dash", "concat", "image2", "tee", "sdp", "rtp", "rtsp",
     "lavfi", "mpjpeg", "smjpeg"}
)
MODES = ("auto", "all", "keyframes", "nonref")
DECODE_MODES = ("keyframes", "nonref", "all")  # what `VideoInfo.decode_mode` may say, cheapest first
FRAME_FORMATS = ("jpeg", "rgb")


@dataclass(frozen=True)
class SampledFrame:
    frame_index: int  # index of the sample bucket: floor((pts_seconds - start) * fps)
    ts_ms: int  # presentation time in ms from the stream start (rounded)
    width: int  # of the stored image (after upright rotation and downscale)
    height: int
    jpeg: bytes  # the JPEG; empty when the frame was asked for as "rgb"
    rgb: bytes | None = None  # frame_format "rgb": raw uint8 pixels, row-major height x width x 3
    # with a scorer (percolate.video.frame_output.FrameScorer): (score, loc_x, loc_y, flops) of the
    # frame; its `jpeg` is empty when the scorer did not keep the frame's pixels
    scores: tuple[float, float, float, float] | None = None

    def pixels(self):
        """The "rgb" frame as a read-only uint8 array of shape (height, width, 3)."""
        import numpy as np

        if self.rgb is None:
            raise ValueError("not an rgb frame: sample with frame_format='rgb'")
        return np.frombuffer(self.rgb, np.uint8).reshape(self.height, self.width, 3)


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    width: int  # coded (stored) width, BEFORE rotation; see `rotation`
    height: int
    codec: str
    avg_fps: float | None
    rotation: int  # clockwise degrees applied to make frames upright: 0/90/180/270
    decode_mode: str  # one of DECODE_MODES: what was decoded (see percolate.video.decode)
    keyframe_interval_s: float | None  # largest gap between consecutive keyframes
    errors: int = 0  # failed packets + corrupt frames (skipped)
    container: str = ""  # FFmpeg demuxer name
    packets: int = 0  # video packets demuxed in the sampling pass
    frames_decoded: int = 0  # frames that came out of the decoder
    elapsed_s: float = 0.0  # wall clock of the whole call
    # CPU seconds of the decoding process (time.process_time), split by step: opening,
    # probing, the demux-only pass, demux and decode; yuv->rgb + resize + rotation; JPEG
    # encoding (0 for frame_format "rgb"); a scorer's model. Handing frames over (the pipe, the caller's sink)
    # is in none of them.
    decode_cpu_s: float = 0.0
    convert_cpu_s: float = 0.0
    encode_cpu_s: float = 0.0
    score_cpu_s: float = 0.0  # a scorer's forward passes (its input's downscale is in convert_cpu_s)


class VideoRejected(Exception):
    """The file is not something we sample; `reason` is one of REASON_CODES."""

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
    # CPU seconds of the decoding process (time.process_time; RLIMIT_CPU in the isolated child),
    # so a loaded machine does not turn a good video into decode_timeout. The isolated child is
    # also killed after `wall_factor` x this in wall-clock time (a read that never returns).
    time_limit_s: float = 300.0
    wall_factor: float = 3.0
    # memory one decode may take on top of the process it is forked from; enforced
    # (RLIMIT_AS, RLIMIT_DATA) only by percolate.video.isolation.sample_video_isolated
    max_memory_bytes: int = 2 * 1024 ** 3
    # a side shorter than this, as stored or once scaled to max_side, is absurd (a sliver:
    # nothing to see, and the sampled-frames expectations refuse it)
    min_side: int = 16
    # more than this fraction of decode attempts failing -> too_many_frames_failed
    max_error_fraction: float = 0.5
    # per video: more sampled frames (None: the most `max_duration_s` at the sampling rate can
    # give) or more sampled bytes than this -> too_many_frames; the isolated decode's caller
    # never holds more than one frame of the child's output at a time
    max_frames: int | None = None
    max_sampled_bytes: int = 2 * 1024 ** 3
    allowed_formats: tuple[str, ...] = field(default=DEFAULT_ALLOWED_FORMATS)


class ScorerFailed(Exception):
    """A `percolate.video.frame_output.FrameScorer` raised: the model's failure, not the stream's
    (never read as `corrupt_stream`); the sampling job quarantines the video as `decode_error`
    with this message, and a model failing on every video trips the quarantine-spike check."""


class DecoderUnavailable(RuntimeError):
    """The decode could not run for a reason of the machine (fork, pipe, sandbox set-up): an
    infrastructure fault, never a quarantine reason; the task fails and retries."""


def frame_cap(limits: DecodeLimits, fps) -> int:
    """The most frames one video may yield at `fps` under `limits`."""
    if limits.max_frames is not None:
        return int(limits.max_frames)
    return int(math.ceil(float(limits.max_duration_s) * float(fps))) + 2


def fps_fraction(fps: float) -> Fraction:
    """`fps` as an exact fraction, read through its decimal repr (0.1 is exactly 1/10)."""
    if isinstance(fps, Fraction):
        return fps
    if isinstance(fps, int):
        return Fraction(fps)
    return Fraction(repr(float(fps)))


def check_arguments(fps, mode: str, max_side: int, jpeg_quality: int, threads: int,
                    frame_format: str = "jpeg") -> Fraction:
    """Raise ValueError for invalid sampling arguments; return `fps` as an exact fraction."""
    if frame_format not in FRAME_FORMATS:
        raise ValueError(f"frame_format must be one of {FRAME_FORMATS}, got {frame_format!r}")
    if not (isinstance(fps, (int, float, Fraction)) and math.isfinite(float(fps)) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if int(max_side) < 1:
        raise ValueError("max_side must be >= 1")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError("jpeg_quality must be in 1..100")
    if int(threads) < 0:
        raise ValueError("threads must be >= 0 (0 = FFmpeg's choice)")
    return fps_fraction(fps)
