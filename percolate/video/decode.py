"""Decode a stored video and keep N frames per second of presentation time, safely.

Pure Python (PyAV + numpy + Pillow); no Spark dependency.  Called once per video,
typically from a Spark `mapInPandas` UDF, so decoding is single-threaded by default
(Spark already runs one task per core).

Sampling
--------
Frames are bucketed by PRESENTATION time, not by frame count, so variable frame rate
is handled: bucket `k` covers `[k/fps, (k+1)/fps)` seconds after the stream start
(`stream.start_time` when the container gives it, else the first timestamp seen).
The first frame (in presentation order) of every bucket is kept; buckets without a
frame are skipped, never filled with duplicates.  Bucket arithmetic is exact integer
arithmetic on `pts * time_base` (`fps` is read through its decimal repr, so
`fps=0.1` means exactly 1/10).

Decode modes
------------
* `"all"`: decode every frame; keep the first frame of each bucket.
* `"keyframes"`: demux every packet but only send keyframe packets to the decoder
  (which also runs with `skip_frame="NONKEY"`), and only the FIRST keyframe of each
  bucket: a keyframe whose bucket already has a sample is never decoded.  Buckets that
  contain frames but no keyframe produce no sample in this mode.
* `"nonref"`: decode every reference frame, and a non-reference frame only when it is
  the first frame (smallest timestamp, from the demux-only pass) of its bucket: the
  decoder runs with `skip_frame="NONREF"` except for those packets.  Nothing refers
  to a non-reference frame, so the output is exactly `"all"`'s (same frames, same
  pixels, same timestamps) for less work where the encoder made non-reference frames
  (B-frames that nothing refers to, temporal layers); on a stream without any it costs what
  `"all"` costs.  A packet without a timestamp turns it into `"all"`.
* `"auto"` (default): a cheap demux-only pass reads packet timestamps and keyframe
  flags; if every bucket that has any frame also has a keyframe, decode in
  `"keyframes"` mode, otherwise `"nonref"`.  When keyframes start each bucket (e.g.
  30 fps with GOP 30 at fps=1) all modes return the same buckets and timestamps.
  When a keyframe lies inside a bucket but not at its start, keyframes mode returns
  that keyframe (its true `ts_ms`) instead of the bucket's very first frame.

`VideoInfo.decode_mode` records what was decoded: `"keyframes"`, `"nonref"` (some
non-reference frames were left undecoded) or `"all"` (every frame was decoded, including
`"nonref"` on a stream that has no non-reference frame to skip).  The measured costs and
what else was tried (skipping the loop filter, threads, `flags2=fast`, `skip_idct`) are
in docs/sampling.md.

Output frames are upright (display-matrix / `rotate` tag applied; multiples of 90
degrees only, mirror matrices are ignored), corrected for non-square sample aspect
ratio, downscaled so the long side is at most `max_side` (never upscaled), and
JPEG-encoded with Pillow (`frame_format="jpeg"`), or handed over as raw RGB bytes
(`frame_format="rgb"`: `SampledFrame.rgb`, height x width x 3, no JPEG made).
`VideoInfo` splits the call's CPU time (`time.process_time`, so the decoding process's
own) into decode, conversion, encoding and scoring.

Scoring in the decoder (`scorer`, a `FrameScorer`)
--------------------------------------------------
(The frames' way out, scaling, scoring and encoding, is `percolate.video.frame_output`.)
With a scorer (the nightly prefilter, `percolate.transforms.sampling.PrefilterStep`) each
sampled frame is first scaled by the decoder's own scaler straight to the model's input
size (`FrameScorer.size`, swscale's area filter, upright), without the full-size RGB frame
or a JPEG. The frames are scored `FrameScorer.batch` at a time, and only those the scorer
keeps (`FrameScorer.keep`: the frames that pass, and the audit's draws) are converted and
JPEG-encoded as above. Every frame is handed on with its `scores`; a frame not kept has an
empty `jpeg`. The frames of a batch wait as the decoder gave them (at most
`PENDING_PIXELS` pixels). The measurements, and how the area filter's input compares with
the JPEG draft that training decodes, are in docs/tuning.md.

Safety (untrusted input)
------------------------
* Only the `file` protocol is allowed, and only the container demuxers listed in
  `DecodeLimits.allowed_formats` may be used (FFmpeg `format_whitelist`, enforced
  after probing but BEFORE the demuxer reads its header).  Playlists (HLS `.m3u8`,
  `ffconcat`), image demuxers (`png_pipe`, `jpeg_pipe`, `image2` ...) and
  everything else are rejected as `not_a_video` without ever opening files they
  reference.  MP4 data references (`enable_drefs`) stay off.
* `width*height > max_pixels` is rejected before decoding (and re-checked on every
  decoded frame); container duration outside `[min_duration_s, max_duration_s]` is
  rejected before decoding (and re-checked against observed timestamps); the CPU
  time of the decoding process (probing + demux pass + decode) is limited to
  `time_limit_s`, checked between packets (CPU, not wall clock: a busy machine does not
  make a good video time out).  A single FFmpeg call that never returns, and the memory cap
  `max_memory_bytes`, are only enforced by
  `percolate.video.isolation.sample_video_isolated`, which runs this same code in a
  forked child with hard limits (what the Spark job uses).
* An allocation failure (`MemoryError`, FFmpeg `ENOMEM`) is `memory_limit`.
* Every problem with the file itself raises `VideoRejected` (see `percolate.video.limits`).
* A stream that decodes partially (truncated, damaged packets) returns the frames it
  got; `VideoInfo.errors` counts packets that failed to demux/decode and frames the
  decoder flagged corrupt (those are skipped; a later frame of the same bucket may
  replace them).  Nothing decoded at all -> `corrupt_stream`; more than
  `max_error_fraction` of decode attempts failed -> `too_many_frames_failed`.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Callable

import av
import av.error
import numpy as np

from percolate.video.frame_output import FrameOutput, FrameScorer
from percolate.video.limits import DecodeLimits, SampledFrame, VideoInfo, VideoRejected, check_arguments
from percolate.video.probe import (Deadline, check_duration, check_stream, frame_rotation_cw, looks_like_playlist,
                                   open_container, plan_buckets)

def sample_video(path: str, fps: float = 1.0, max_side: int = 640, jpeg_quality: int = 90,
                 limits: DecodeLimits = DecodeLimits(), mode: str = "auto",
                 threads: int = 1, frame_format: str = "jpeg",
                 scorer: FrameScorer | None = None) -> tuple[VideoInfo, list[SampledFrame]]:
    """Sample `fps` frames per second of presentation time from the video at `path`.

    Returns `(info, frames)`; raises `VideoRejected` for any bad file.
    """
    frames: list[SampledFrame] = []
    info = stream_video(path, frames.append, fps=fps, max_side=max_side, jpeg_quality=jpeg_quality,
                        limits=limits, mode=mode, threads=threads, frame_format=frame_format, scorer=scorer)
    return info, frames


def stream_video(path: str, sink: Callable[[SampledFrame], None], fps: float = 1.0, max_side: int = 640,
                 jpeg_quality: int = 90, limits: DecodeLimits = DecodeLimits(), mode: str = "auto",
                 threads: int = 1, frame_format: str = "jpeg", scorer: FrameScorer | None = None) -> VideoInfo:
    """Like `sample_video`, but hand each frame to `sink` as soon as it is encoded (with a
    scorer: as soon as its batch is scored).

    Frames come in bucket order. If `VideoRejected` is raised, the frames already handed
    over belong to a rejected video and must be discarded.
    """
    fps_q = check_arguments(fps, mode, max_side, jpeg_quality, threads, frame_format)
    if scorer is not None and frame_format != "jpeg":
        raise ValueError("a scorer keeps JPEGs of the frames it keeps: frame_format must be 'jpeg'")
    t_start, cpu_start = time.monotonic(), time.process_time()
    deadline = Deadline(limits.time_limit_s)
    path = os.fspath(path)
    st = os.stat(path)  # missing file -> FileNotFoundError (not a bad video)
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:  # (a pipe's size means nothing)
        raise VideoRejected("empty_file", "file has zero bytes")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if looks_like_playlist(head):
        raise VideoRejected("not_a_video", "playlist/manifest, not a media file")
    try:
        container = open_container(path, head, limits)
        try:
            run = _Sampling(container, path, head, fps_q, int(max_side), int(jpeg_quality), limits, mode,
                            int(threads), deadline, sink, frame_format, scorer)
            return run.info(time.monotonic() - t_start, time.process_time() - cpu_start)
        finally:
            container.close()
    except (VideoRejected, FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except MemoryError as e:
        raise VideoRejected("memory_limit", f"out of memory: {e or type(e).__name__}") from None
    except (av.error.FFmpegError, EOFError, ValueError, OverflowError, ZeroDivisionError,
            TypeError, UnicodeError, RuntimeError, OSError, IndexError, KeyError,
            AttributeError) as e:
        # Anything unexpected from the media stack on this input is a bad stream.
        raise VideoRejected("corrupt_stream", f"{type(e).__name__}: {e}") from None


class _Sampling:
    """One pass over a video's packets: decide the decode mode, decode, keep a frame per bucket."""

    def __init__(self, container, path, head, fps_q, max_side, jpeg_quality, limits, mode, threads,
                 deadline, sink, frame_format, scorer=None):
        deadline.check()
        self.facts = check_stream(container, limits, max_side)
        self.limits, self.deadline, self.threads = limits, deadline, threads
        tb = self.facts.time_base
        self.out = FrameOutput(sink, max_side=max_side, min_side=min(limits.min_side, max_side),
                               jpeg_quality=jpeg_quality, frame_format=frame_format, threads=threads,
                               sar=self.facts.sar, time_base=tb, deadline=deadline, scorer=scorer)
        self.num, self.den = tb.numerator * fps_q.numerator, tb.denominator * fps_q.denominator
        self.start_pts = self.facts.stream.start_time  # may be None
        self.decode_mode = mode
        self.bucket_first_pts = None  # nonref: the packets decoded even when not reference frames
        if mode in ("auto", "nonref"):
            plan = plan_buckets(path, head, limits, deadline, self.start_pts, self.bucket_of)
            if mode == "auto" and plan.keyframes_serve:
                self.decode_mode = "keyframes"
            elif plan.bucket_first_pts is not None:
                self.decode_mode, self.bucket_first_pts = "nonref", plan.bucket_first_pts
            else:
                self.decode_mode = "all"
            if self.start_pts is None:
                self.start_pts = plan.first_pts
            deadline.check()
        # timestamps past the duration limit (+1 s of slack) mean the header lied
        self.max_rel_pts = (int((limits.max_duration_s + 1.0) * tb.denominator / tb.numerator)
                            if limits.max_duration_s and np.isfinite(limits.max_duration_s) else None)
        self.errors = self.attempts = self.failed = self.n_packets = self.n_frames = 0
        self.first_rotation = None
        self.last_bucket = -1
        self.requested_bucket = -1  # keyframes mode: highest bucket whose keyframe was sent
        self.last_key_pts = self.max_key_gap = self.last_pts_seen = None
        self._run(container)

    def bucket_of(self, rel_pts: int) -> int:
        return (rel_pts * self.num) // self.den

    def _run(self, container) -> None:
        cc = self.facts.stream.codec_context
        cc.thread_count = self.threads
        if self.threads != 1:
            cc.thread_type = "AUTO"
        keyframes_only = self.decode_mode == "keyframes"
        if keyframes_only:
            cc.skip_frame = "NONKEY"
        firsts, skipping = self.bucket_first_pts, False
        try:
            for pkt in container.demux(self.facts.stream):
                if pkt.size == 0:
                    continue  # the demuxer's trailing flush packet; flushed below
                self.n_packets += 1
                if (self.n_packets & 15) == 0:
                    self.deadline.check()
                self._note_keyframe(pkt)
                if keyframes_only:
                    if pkt.is_keyframe:
                        self._decode_keyframe(cc, pkt)
                    continue
                if firsts is not None and skipping != (pkt.pts not in firsts):
                    # read by the decoder for each packet it is sent (one thread: synchronously)
                    skipping = not skipping
                    cc.skip_frame = "NONREF" if skipping else "DEFAULT"
                self._decode(cc, pkt)
        except MemoryError:
            raise
        except av.error.FFmpegError:
            self.errors += 1  # the demuxer gave up (truncated / damaged container)
        self.deadline.check()
        try:
            for fr in cc.decode(None):
                self._emit(fr)
        except MemoryError:
            raise
        except av.error.FFmpegError:
            self.errors += 1
        self.out.flush()
        if not self.out.n_out:
            raise VideoRejected("corrupt_stream", f"no frame decoded ({self.n_packets} packets, {self.errors} errors)")
        if self.attempts and self.errors > self.limits.max_error_fraction * self.attempts:
            raise VideoRejected("too_many_frames_failed", f"{self.errors} errors in {self.attempts} decode attempts")

    def _note_keyframe(self, pkt) -> None:
        if pkt.is_keyframe and pkt.pts is not None:
            if self.last_key_pts is not None and pkt.pts > self.last_key_pts:
                gap = pkt.pts - self.last_key_pts
                if self.max_key_gap is None or gap > self.max_key_gap:
                    self.max_key_gap = gap
            self.last_key_pts = pkt.pts

    def _decode_keyframe(self, cc, pkt) -> None:
        """Decode a keyframe only when its bucket has no sample yet."""
        if pkt.pts is None:
            self._decode(cc, pkt)
            return
        if self.start_pts is None:
            self.start_pts = pkt.pts
        rel = pkt.pts - self.start_pts
        b = self.bucket_of(rel) if rel >= 0 else -1
        if b <= self.requested_bucket or b <= self.last_bucket:
            return  # bucket already served: do not decode
        prev, self.requested_bucket = self.requested_bucket, b
        if not self._decode(cc, pkt):
            self.requested_bucket = prev  # let a later keyframe serve it

    def _decode(self, cc, pkt) -> bool:
        self.attempts += 1
        try:
            frames = cc.decode(pkt)
        except MemoryError:
            raise
        except av.error.FFmpegError:
            self.errors += 1
            self.failed += 1
            return False
        for fr in frames:
            self._emit(fr)
        return True

    def _emit(self, frame) -> None:
        self.n_frames += 1
        if getattr(frame, "is_corrupt", False):
            self.errors += 1
            return
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            self.errors += 1
            return
        if self.start_pts is None:
            self.start_pts = pts
        rel = pts - self.start_pts
        if rel < 0:
            return  # pre-roll before the stream start
        if self.max_rel_pts is not None and rel > self.max_rel_pts:
            raise VideoRejected("duration_out_of_range", f"timestamp {float(rel * self.facts.time_base):.1f}s "
                                                         f"beyond max duration {self.limits.max_duration_s:g}s")
        if self.last_pts_seen is None or pts > self.last_pts_seen:
            self.last_pts_seen = pts
        b = self.bucket_of(rel)
        if b <= self.last_bucket:
            return
        fw, fh = frame.width, frame.height
        if fw * fh > self.limits.max_pixels or fw <= 0 or fh <= 0:
            raise VideoRejected("absurd_dimensions", f"decoded frame {fw}x{fh}")
        self.last_bucket = b
        rotation = frame_rotation_cw(frame, self.facts.rotation_cw)
        if self.first_rotation is None:
            self.first_rotation = rotation
        self.out.emit(frame, b, rel, rotation)

    def mode_used(self) -> str:
        if self.decode_mode != "nonref":
            return self.decode_mode
        # frames the decoder was sent and neither returned nor failed on: skipped non-reference frames
        return "nonref" if self.n_frames < self.attempts - self.failed else "all"

    def info(self, elapsed_s: float, cpu_s: float) -> VideoInfo:
        facts, duration_s, out = self.facts, self.facts.duration_s, self.out
        if duration_s is None:  # no duration in the header: from the timestamps seen
            last = self.last_pts_seen if self.last_pts_seen is not None else 0
            frame_dur = (1.0 / facts.avg_fps) if facts.avg_fps else 0.0
            duration_s = float((last - (self.start_pts or 0)) * facts.time_base) + frame_dur
            check_duration(duration_s, self.limits)
        return VideoInfo(
            duration_s=float(duration_s),
            width=facts.width or out.first_size[0],
            height=facts.height or out.first_size[1],
            codec=facts.codec,
            avg_fps=facts.avg_fps,
            rotation=facts.rotation_cw if self.first_rotation is None else self.first_rotation,
            decode_mode=self.mode_used(),
            keyframe_interval_s=(float(self.max_key_gap * facts.time_base) if self.max_key_gap is not None else None),
            errors=self.errors,
            container=facts.container_format,
            packets=self.n_packets,
            frames_decoded=self.n_frames,
            elapsed_s=elapsed_s,
            decode_cpu_s=max(0.0, cpu_s - out.convert_cpu - out.encode_cpu - out.score_cpu - out.sink_cpu),
            convert_cpu_s=out.convert_cpu,
            encode_cpu_s=out.encode_cpu,
            score_cpu_s=out.score_cpu,
        )
