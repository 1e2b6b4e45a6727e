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
* the parent kills the child (`SIGKILL`) when it has not finished
  `HARD_KILL_GRACE_S` after `limits.time_limit_s`: `decode_timeout`;
* a child that dies from a signal (segfault, abort, the kernel's OOM killer) or exits
  without a result is `decode_crashed`; it writes no core file and dies with its parent.

Sampled frames stream back through a pipe as they are encoded, in a small binary framing
(no pickle: the parent never deserialises objects produced while parsing hostile bytes);
raw RGB frames (`frame_format="rgb"`) as another message kind, the `VideoInfo` (its CPU
split included) as JSON.
The result is the same `(VideoInfo, [SampledFrame])` as `sample_video`; argument
errors raise `ValueError` and a missing file `FileNotFoundError` in the caller,
before anything is forked. One fork per video costs about 10 ms of wall time (see
`benchmarks/bench_isolation.py`). POSIX only (`os.fork`); the limits are Linux's.
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import resource
import select
import signal
import struct
import time
from dataclasses import asdict

import av.logging
import av.subtitles.stream  # noqa: F401 - av.open imports it on first use: here, once, not in each child
from PIL import Image

from percolate.video.decode import stream_video
from percolate.video.limits import DecodeLimits, SampledFrame, VideoInfo, VideoRejected, check_arguments

__all__ = ["HARD_KILL_GRACE_S", "sample_video_isolated"]

Image.preinit()  # the JPEG encoder's plugin, loaded once in the parent (a child would load it every time)

HARD_KILL_GRACE_S = 1.0  # the child's own deadline check normally answers first

_HEADER = struct.Struct(">cI")  # message kind, payload length
_FRAME = struct.Struct(">iqii")  # frame_index, ts_ms, width, height; the JPEG (b"F") or RGB bytes (b"G") follow
_EXIT_MEMORY = 86  # the child ran out of memory where it could not even report it
_READ_CHUNK = 1 << 20
_PR_SET_PDEATHSIG = 1
# what FFmpeg logs when an allocation fails; rejections that such a failure can cause
_ALLOCATION_FAILED = re.compile(r"allocate memory|could not allocate|get_buffer\(\) failed|out of memory"
                                r"|failed to map segment", re.IGNORECASE)
_MAYBE_MEMORY = ("corrupt_stream", "too_many_frames_failed", "memory_limit")


def sample_video_isolated(
    path: str,
    fps: float = 1.0,
    max_side: int = 640,
    jpeg_quality: int = 90,
    limits: DecodeLimits = DecodeLimits(),
    mode: str = "auto",
    threads: int = 1,
    frame_format: str = "jpeg",
) -> tuple[VideoInfo, list[SampledFrame]]:
    """`sample_video` in a forked child with a memory cap and a hard time limit."""
    check_arguments(fps, mode, max_side, jpeg_quality, threads, frame_format)
    if limits.max_memory_bytes <= 0:
        raise ValueError("max_memory_bytes must be > 0")
    path = os.fspath(path)
    os.stat(path)  # a missing path is an infrastructure problem, raised here like sample_video
    kill_at = time.monotonic() + max(0.0, float(limits.time_limit_s)) + HARD_KILL_GRACE_S
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(read_fd)
        _child(write_fd, parent, path, dict(fps=fps, max_side=max_side, jpeg_quality=jpeg_quality,
                                    limits=limits, mode=mode, threads=threads, frame_format=frame_format))
    os.close(write_fd)
    try:
        messages, timed_out = _read_all(read_fd, kill_at)
    except BaseException:  # interrupted: leave no child behind
        _reap(pid, time.monotonic())
        raise
    finally:
        os.close(read_fd)
    status = _reap(pid, kill_at if not timed_out else time.monotonic())
    return _outcome(messages, status, timed_out, limits)


# ---- parent ------------------------------------------------------------------------------


def _read_all(fd: int, kill_at: float) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Messages from the child until it closes the pipe, or (…, True) past `kill_at`."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    buf = bytearray()
    messages: list[tuple[bytes, bytes]] = []
    while True:
        remaining = kill_at - time.monotonic()
        if remaining <= 0:
            return messages, True
        if not poller.poll(max(1, int(min(remaining, 3600.0) * 1000))):
            continue
        chunk = os.read(fd, _READ_CHUNK)
        if not chunk:
            return messages, False
        buf += chunk
        while len(buf) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(buf)
            if len(buf) < _HEADER.size + size:
                break
            messages.append((kind, bytes(buf[_HEADER.size:_HEADER.size + size])))
            del buf[:_HEADER.size + size]


def _reap(pid: int, kill_at: float) -> int:
    """Wait for the child until `kill_at`, then SIGKILL it; its wait status."""
    pidfd = _pidfd(pid)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            remaining = kill_at - time.monotonic()
            if remaining <= 0:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return os.waitpid(pid, 0)[1]
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


def _outcome(messages, status: int, timed_out: bool, limits: DecodeLimits):
    if timed_out:
        raise VideoRejected("decode_timeout", f"decode did not finish within {limits.time_limit_s:g}s; "
                                              f"killed after {limits.time_limit_s + HARD_KILL_GRACE_S:g}s")
    frames: list[SampledFrame] = []
    for kind, payload in messages:
        if kind in (b"F", b"G"):
            index, ts_ms, width, height = _FRAME.unpack_from(payload)
            data = payload[_FRAME.size:]
            if kind == b"G" and len(data) != 3 * width * height:
                raise RuntimeError(f"isolated child sent {len(data)} bytes for a {width}x{height} RGB frame")
            frames.append(SampledFrame(frame_index=index, ts_ms=ts_ms, width=width, height=height,
                                       jpeg=data if kind == b"F" else b"", rgb=data if kind == b"G" else None))
        elif kind == b"I":
            return VideoInfo(**json.loads(payload)), frames
        elif kind == b"R":
            rejected = json.loads(payload)
            raise VideoRejected(rejected["reason"], rejected["message"])
        elif kind == b"E":
            error = json.loads(payload)
            raise RuntimeError(f"decode failed in the isolated child: {error['type']}: {error['message']}")
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
        _apply_limits(kwargs["limits"])

        def send(kind: bytes, payload: bytes) -> None:
            view = memoryview(_HEADER.pack(kind, len(payload)) + payload)
            while view:
                view = view[os.write(fd, view):]

        def send_frame(f: SampledFrame) -> None:
            if f.rgb is None:
                send(b"F", _FRAME.pack(f.frame_index, f.ts_ms, f.width, f.height) + f.jpeg)
            else:
                send(b"G", _FRAME.pack(f.frame_index, f.ts_ms, f.width, f.height) + f.rgb)

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
