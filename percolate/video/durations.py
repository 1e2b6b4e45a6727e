"""Durations of stored videos from their container headers, nothing decoded: the backfill dry
run's estimate when no published day gives a bitrate.

The headers are untrusted input, so they are read in a child process with the decode limits'
memory and CPU caps (and the same allowed demuxers); a file that cannot be read gives None.

    python -m percolate.video.durations FILE...   # one JSON list of seconds (or null)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from percolate.video.limits import DecodeLimits

CPU_S_PER_FILE = 2


def container_seconds(path: str, limits: DecodeLimits = DecodeLimits()) -> float | None:
    """The video stream's duration from the header (in this process: call it in a child)."""
    from percolate.video.probe import open_container, pick_video_stream

    with open(path, "rb") as fh:
        head = fh.read(64)
    try:
        with open_container(path, head, limits) as container:
            stream = pick_video_stream(container)
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return container.duration / 1_000_000 if container.duration else None
    except Exception:  # noqa: BLE001 - an unreadable header is an unknown duration, not an error
        return None


def probe_seconds(paths: list[str], limits: DecodeLimits = DecodeLimits(), timeout_s: float = 120) -> list[float | None]:
    """Each file's duration, read in one limited child process; all None if the child fails."""
    if not paths:
        return []

    def caps() -> None:
        memory = limits.max_memory_bytes + 512 * 1024 ** 2  # the interpreter and PyAV themselves
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = CPU_S_PER_FILE * len(paths) + 10
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    try:
        out = subprocess.run([sys.executable, "-m", "percolate.video.durations", *paths], capture_output=True,
                             text=True, timeout=timeout_s, preexec_fn=caps, env={"PATH": "/usr/bin:/bin"})
        seconds = json.loads(out.stdout) if out.returncode == 0 else None
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        seconds = None
    if not isinstance(seconds, list) or len(seconds) != len(paths):
        return [None] * len(paths)
    return [float(s) if isinstance(s, (int, float)) and 0 < s < 1e7 else None for s in seconds]


if __name__ == "__main__":
    print(json.dumps([container_seconds(p) for p in sys.argv[1:]]))
