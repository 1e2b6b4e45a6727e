"""Decode one untrusted video in a forked child process with hard limits.

`percolate.video.decode.sample_video` checks its time limit between packets, so one
FFmpeg call that never returns (a stalled read, a decoder loop) would hang the caller,
and nothing stops a decoder from allocating the machine's memory.
`sample_video_isolated` runs the same sampler in a child forked for this one video:

* the child's address space and its data segment may each grow by at most
  `limits.max_memory_bytes` over what it inherited at the fork (`RLIMIT_AS` and
  `RLIMIT_DATA`; the cap is relative because a Spark Python worker already maps a few
  hundred MB of libraries before it decodes anything); an allocation past it fails inside
  FFmpeg or Python and becomes `memory_limit` (decoders that drop a frame they cannot
  allocate only log it: the child reads FFmpeg's log for that; a failure FFmpeg does not
  report at all reads as `corrupt_stream`).  Free heap the parent already holds is
  inherited and not counted: the cap bounds the growth a hostile file can cause;
* time is CPU time, so a busy machine does not time a good video out: the child checks
  `limits.time_limit_s` CPU seconds between packets; the parent kills it (`SIGKILL`) when
  it is silent and `HARD_KILL_GRACE_S` past them (one FFmpeg call that never returns), or
  after `limits.wall_factor` times the limit in wall-clock time plus the grace (a read that
  never returns uses no CPU): all `decode_timeout`;
* a child that dies from a signal (segfault, abort, the kernel's OOM killer) or exits
  without a result is `decode_crashed`; it writes no core file and dies with its parent;
* before it reads a byte of the video the child confines itself
  (`percolate.video.sandbox`: no environment, no inherited descriptors but the pipe, no
  file but its input, no socket); one that cannot is this machine's fault, not the
  video's: `DecoderUnavailable`, which fails the task.

Sampled frames stream back through a pipe as they are encoded, in a small binary framing
(no pickle: the parent never deserialises objects produced while parsing hostile bytes);
raw RGB frames (`frame_format="rgb"`) and scored frames (`scorer`: the prefilter run in the
child, `percolate.video.frame_output.FrameScorer`) as other message kinds, the `VideoInfo` (its CPU
split included) as JSON. The parent checks every message (`percolate.video.payloads`: a
JPEG of the size it states, indexes strictly increasing, `VideoInfo` typed and bounded)
and hands each frame on as it arrives (`stream_video_isolated`); past `frame_cap` frames
or `limits.max_sampled_bytes` bytes it kills the child: `too_many_frames`; a malformed
message: `bad_decoder_output`.
`sample_video_isolated` returns the same `(VideoInfo, [SampledFrame])` as `sample_video`;
argument errors raise `ValueError` and a missing file `FileNotFoundError` in the caller,
before anything is forked; a failed fork or pipe raises `DecoderUnavailable`. One fork per
video costs about 10 ms of wall time (see `benchmarks/bench_isolation.py`). POSIX only
(`os.fork`); the limits and the sandbox are Linux's.
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import resource
import select
import signal
import time
from dataclasses import asdict
from typing import Callable

import av.logging
import av.subtitles.stream  # noqa: F401 - av.open imports it on first use: here, once, not in each child
from PIL import Image

from percolate.core.reasons import REASON_CODES
from percolate.video.decode import stream_video
from percolate.video.limits import (DecodeLimits, DecoderUnavailable, SampledFrame, VideoInfo, VideoRejected,
                                    check_arguments)
from percolate.video.payloads import (FRAME, HEADER, SCORES, BadDecoderOutput, OverCpu, Reader, TooManyFrames,
                                      parse_info, parse_json)
from percolate.video.sandbox import confine

__all__ = ["HARD_KILL_GRACE_S", "sample_video_isolated", "stream_video_isolated"]

Image.preinit()  # the JPEG encoder's plugin, loaded once in the parent (a child would load it every time)

HARD_KILL_GRACE_S = 1.0  # the child's own deadline check normally answers first

_EXIT_MEMORY = 86  # the child ran out of memory where it could not even report it
_PR_SET_PDEATHSIG = 1
# what FFmpeg logs when an allocation fails; rejections that such a failure can cause
_ALLOCATION_FAILED = re.compile(r"allocate memory|could not allocate|get_buffer\(\) failed|out of memory"
                                r"|failed to map segment", re.IGNORECASE)
_MAYBE_MEMORY = ("corrupt_stream", "too_many_frames_failed", "memory_limit")
# reasons only the parent or the sampling job gives: a child claiming one is misbehaving
_PARENT_ONLY = frozenset({"missing_user", "missing_file", "decode_error", "too_many_frames", "bad_decoder_output"})


def sample_video_isolated(
    path: str,
    fps: float = 1.0,
    max_side: int = 640,
    jpeg_quality: int = 90,
    limits: DecodeLimits = DecodeLimits(),
    mode: str = "auto",
    threads: int = 1,
    frame_format: str = "jpeg",
    scorer=None,
) -> tuple[VideoInfo, list[SampledFrame]]:
    """`sample_video` in a forked, confined child with a memory cap and hard time limits."""
    frames: list[SampledFrame] = []
    info = stream_video_isolated(path, frames.append, fps=fps, max_side=max_side, jpeg_quality=jpeg_quality,
                                 limits=limits, mode=mode, threads=threads, frame_format=frame_format,
                                 scorer=scorer)
    return info, frames


def stream_video_isolated(
    path: str,
    sink: Callable[[SampledFrame], None],
    fps: float = 1.0,
    max_side: int = 640,
    jpeg_quality: int = 90,
    limits: DecodeLimits = DecodeLimits(),
    mode: str = "auto",
    threads: int = 1,
    frame_format: str = "jpeg",
    scorer=None,
) -> VideoInfo:
    """Like `sample_video_isolated`, but each frame goes to `sink` as soon as it has arrived
    and passed its checks: the caller holds one frame of the child's output at a time. If
    `VideoRejected` is raised, frames already handed over belong to a rejected video.

    A `scorer` (`percolate.video.frame_output.FrameScorer`) runs in the child, with the model the
    caller loaded before the fork; warm it up in the caller first (one `score` call), so the
    confined child needs no file to start it."""
    check_arguments(fps, mode, max_side, jpeg_quality, threads, frame_format)
    if scorer is not None and frame_format != "jpeg":
        raise ValueError("a scorer keeps JPEGs of the frames it keeps: frame_format must be 'jpeg'")
    if limits.max_memory_bytes <= 0:
        raise ValueError("max_memory_bytes must be > 0")
    path = os.fspath(path)
    os.stat(path)  # a missing path is an infrastructure problem, raised here like sample_video
    wall_s = max(0.0, float(limits.time_limit_s)) * max(1.0, float(limits.wall_factor)) + HARD_KILL_GRACE_S
    kill_at = time.monotonic() + wall_s
    try:
        read_fd, write_fd = os.pipe()
    except OSError as exc:
        raise DecoderUnavailable(f"no pipe for the decode child: {exc}") from exc
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise DecoderUnavailable(f"could not fork the decode child: {exc}") from exc
    if pid == 0:  # child: never returns
        os.close(read_fd)
        _child(write_fd, parent, path, dict(fps=fps, max_side=max_side, jpeg_quality=jpeg_quality,
                                    limits=limits, mode=mode, threads=threads, frame_format=frame_format,
                                    scorer=scorer))
    os.close(write_fd)
    reader = Reader(sink, pid, fps=fps, max_side=max_side, limits=limits,
                    cpu_limit_s=max(0.0, float(limits.time_limit_s)) + HARD_KILL_GRACE_S, scored=scorer is not None)
    try:
        timed_out = reader.read(read_fd, kill_at)
    except BaseException as exc:  # a misbehaving child, or interrupted: leave no child behind
        _reap(pid, time.monotonic())
        if isinstance(exc, TooManyFrames):
            raise VideoRejected("too_many_frames", str(exc)) from None
        if isinstance(exc, OverCpu):
            raise VideoRejected("decode_timeout", str(exc)) from None
        if isinstance(exc, BadDecoderOutput):
            raise VideoRejected("bad_decoder_output", str(exc)[:1000]) from None
        raise
    finally:
        os.close(read_fd)
    # a child that has said its last word has a second to exit; one that said nothing, until kill_at
    until = time.monotonic() if timed_out else min(kill_at, time.monotonic() + HARD_KILL_GRACE_S) \
        if reader.final is not None else kill_at
    status, cpu_s = _reap(pid, until)
    try:
        return _outcome(reader, status, cpu_s, timed_out, limits, wall_s)
    except BadDecoderOutput as exc:
        raise VideoRejected("bad_decoder_output", str(exc)[:1000]) from None


# ---- parent ------------------------------------------------------------------------------


def _reap(pid: int, kill_at: float) -> tuple[int, float]:
    """Wait for the child until `kill_at`, then SIGKILL it; its wait status and CPU seconds."""
    pidfd = _pidfd(pid)
    try:
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                return status, usage.ru_utime + usage.ru_stime
            remaining = kill_at - time.monotonic()
            if remaining <= 0:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, status, usage = os.wait4(pid, 0)
                return status, usage.ru_utime + usage.ru_stime
            if pidfd is None:
                time.sleep(min(remaining, 0.002))
            else:  # readable when the child exits: no polling loop
                select.select([pidfd], [], [], min(remaining, 3600.0))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3
        return None


def _outcome(reader: Reader, status: int, cpu_s: float, timed_out: bool, limits: DecodeLimits,
             wall_s: float) -> VideoInfo:
    if timed_out:
        raise VideoRejected("decode_timeout", f"no result after {wall_s:g}s of wall-clock time "
                                              f"({cpu_s:.1f} CPU-s used of {limits.time_limit_s:g}): killed")
    if reader.final is not None:
        kind, payload = reader.final
        if kind == b"X":
            raise DecoderUnavailable("the decode child could not confine itself: "
                                     + str(parse_json(payload, "sandbox error").get("message"))[:500])
        if kind == b"I":
            return parse_info(payload, max_duration_s=reader.max_info_duration)
        message = parse_json(payload, "rejection" if kind == b"R" else "error")
        if kind == b"R":
            reason = message.get("reason")
            if reason not in REASON_CODES or reason in _PARENT_ONLY:
                raise VideoRejected("bad_decoder_output", f"an unknown rejection reason {str(reason)[:40]!r}")
            raise VideoRejected(reason, str(message.get("message", ""))[:1000])
        raise RuntimeError(f"decode failed in the isolated child: {str(message.get('type'))[:100]}: "
                           f"{str(message.get('message'))[:1000]}")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        hint = " (killed: out of memory?)" if sig == signal.SIGKILL else ""
        raise VideoRejected("decode_crashed", f"decoder process died from signal "
                                              f"{signal.Signals(sig).name}{hint}")
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    if code == _EXIT_MEMORY:
        raise VideoRejected("memory_limit", f"out of memory (limit {limits.max_memory_bytes} bytes "
                                            f"over the parent's address space)")
    raise VideoRejected("decode_crashed", f"decoder process exited with status {code} and no result")


# ---- child -------------------------------------------------------------------------------


def _child(fd: int, parent: int, path: str, kwargs: dict) -> None:
    """Decode, stream the result to `fd`, and `_exit`; never returns, never raises."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        faulthandler.disable()  # a crash is reported by the parent, as decode_crashed
        _die_with_parent(parent)

        def send(kind: bytes, payload: bytes) -> None:
            view = memoryview(HEADER.pack(kind, len(payload)) + payload)
            while view:
                view = view[os.write(fd, view):]

        try:  # before a byte of the video is read
            _apply_limits(kwargs["limits"])
            confine(path, fd)
        except OSError as exc:
            send(b"X", json.dumps({"message": f"{type(exc).__name__}: {exc}"[:1000]}).encode())
            return
        send(b"S", b"")

        def send_frame(f: SampledFrame) -> None:
            if f.scores is not None:
                send(b"K", FRAME.pack(f.frame_index, f.ts_ms, f.width, f.height) + SCORES.pack(*f.scores) + f.jpeg)
            elif f.rgb is None:
                send(b"F", FRAME.pack(f.frame_index, f.ts_ms, f.width, f.height) + f.jpeg)
            else:
                send(b"G", FRAME.pack(f.frame_index, f.ts_ms, f.width, f.height) + f.rgb)

        def reject(reason: str, message: str) -> None:
            send(b"R", json.dumps({"reason": reason, "message": message}).encode())

        # FFmpeg's decoders drop a frame whose buffer cannot be allocated and only log it;
        # its log is how an allocation failure under the cap is told from a corrupt stream.
        av.logging.set_level(av.logging.ERROR)
        with av.logging.Capture(local=False) as logs:
            try:
                info = stream_video(path, send_frame, **kwargs)
            except VideoRejected as exc:
                info, rejected = None, exc
            except MemoryError:
                info, rejected = None, VideoRejected("memory_limit", "out of memory")
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
                if _ALLOCATION_FAILED.search(str(exc)):  # e.g. a library that cannot be mapped
                    reject("memory_limit", f"{type(exc).__name__}: {exc}"[:1000])
                else:
                    send(b"E", json.dumps({"type": type(exc).__name__, "message": str(exc)[:1000]}).encode())
                return
        failed = [f"{name}: {message.strip()}" for _level, name, message in logs
                  if _ALLOCATION_FAILED.search(message)]
        if failed and (info is not None or rejected.reason in _MAYBE_MEMORY):
            reject("memory_limit", f"allocation failed under the {kwargs['limits'].max_memory_bytes}-byte "
                                   f"cap: {failed[0]} ({len(failed)} times)")
        elif info is not None:
            send(b"I", json.dumps(asdict(info)).encode())
        else:
            reject(rejected.reason, rejected.message)
    except MemoryError:
        code = _EXIT_MEMORY
    except BaseException:  # noqa: BLE001 - a broken pipe (parent gone) or worse: just leave
        code = 1
    finally:
        os._exit(code)


def _apply_limits(limits: DecodeLimits) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # no RLIMIT_CPU: while one is set the kernel counts the process's CPU time in scheduler
    # ticks, and the decoders' CPU split (VideoInfo) would read 0 on short steps; the parent
    # watches the child's CPU time instead (payloads.Reader.read)
    mapped, data = _address_space()
    # RLIMIT_AS bounds new mappings; RLIMIT_DATA also bounds memory made writable inside
    # mappings that already exist (glibc grows other threads' reserved malloc arenas with
    # mprotect, which RLIMIT_AS alone does not see)
    for which, used in ((resource.RLIMIT_AS, mapped), (resource.RLIMIT_DATA, data)):
        if used is None:
            continue
        soft, hard = resource.getrlimit(which)
        cap = used + int(limits.max_memory_bytes)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft == resource.RLIM_INFINITY or cap < soft:
            resource.setrlimit(which, (cap, hard))


def _address_space() -> tuple[int | None, int | None]:
    """This process's mapped address space and its data segment in bytes (VmSize, VmData)."""
    sizes: dict[str, int] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmSize", "VmData"):
                    sizes[key] = int(value.split()[0]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return sizes.get("VmSize"), sizes.get("VmData")


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this child if the parent dies (an executor killed mid-decode)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)


def _find_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()  # looked up once here, not in every child
