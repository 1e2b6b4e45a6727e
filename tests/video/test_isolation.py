"""The isolated decode: same results as in-process, and hard limits that contain bad files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from percolate.video.isolation import HARD_KILL_GRACE_S, sample_video_isolated
from percolate.video.decode import sample_video
from percolate.video.limits import DecodeLimits, VideoRejected

from media import make_video

REPO = Path(__file__).resolve().parents[2]


def _without_timing(info):
    return replace(info, elapsed_s=0.0, decode_cpu_s=0.0, convert_cpu_s=0.0, encode_cpu_s=0.0)


@pytest.mark.parametrize("name", ["gop30", "gop90", "vfr", "rot90", "mjpeg", "short", "ts"])
def test_same_frames_and_info_as_in_process(media, name):
    info, frames = sample_video(media[name])
    iso_info, iso_frames = sample_video_isolated(media[name])
    assert _without_timing(iso_info) == _without_timing(info)
    assert iso_frames == frames  # indexes, timestamps, sizes and JPEG bytes


class _MeanScorer:
    """Scores a frame by its mean brightness; keeps every third frame's pixels."""

    size, batch = (32, 18), 2

    def __init__(self):
        self.inputs = []

    def score(self, inputs):
        import numpy as np

        self.inputs.append(inputs.shape)
        n = len(inputs)
        return inputs.mean(axis=(1, 2, 3)) / 255.0, np.full(n, 0.5), np.full(n, 0.25), np.full(n, 1e6)

    def keep(self, frame_index, score):
        return frame_index % 3 == 0


@pytest.mark.parametrize("name", ["gop30", "gop90", "rot90", "vfr"])
def test_a_scorer_in_the_decoder_sees_every_frame_and_keeps_only_the_jpegs_it_chooses(media, name):
    """With a scorer, every sampled frame comes scored and in order, upright at the scorer's
    size, in batches; a kept frame is exactly the frame sampled without one (same JPEG), any
    other has no JPEG but its stored size and timestamp; in the isolated child as in process."""
    info, plain = sample_video(media[name])
    scorer = _MeanScorer()
    _, scored = sample_video(media[name], scorer=scorer)
    iso_info, iso = sample_video_isolated(media[name], scorer=_MeanScorer())
    assert {shape[1:] for shape in scorer.inputs} == {(18, 32, 3)} and max(s[0] for s in scorer.inputs) <= 2
    assert len(scored) == len(plain) == len(iso) and iso_info.decode_mode == info.decode_mode
    for a, b, c in zip(scored, plain, iso):
        assert (a.frame_index, a.ts_ms, a.width, a.height) == (b.frame_index, b.ts_ms, b.width, b.height)
        assert a == c and 0 <= a.scores[0] <= 1
        assert a.jpeg == (b.jpeg if a.frame_index % 3 == 0 else b"")


def test_a_failing_scorer_is_named_never_read_as_a_corrupt_stream(media):
    """The model's failure, not the file's: in process `ScorerFailed`, in the child an error the
    sampling job quarantines as decode_error with the scorer's message (never corrupt_stream)."""
    from percolate.video.limits import ScorerFailed

    class Broken(_MeanScorer):
        def score(self, inputs):
            raise RuntimeError("weights and input disagree")

    with pytest.raises(ScorerFailed, match="the scorer failed: RuntimeError: weights and input disagree"):
        sample_video(media["gop30"], scorer=Broken())
    with pytest.raises(RuntimeError, match="ScorerFailed: the scorer failed: RuntimeError: weights and input"):
        sample_video_isolated(media["gop30"], scorer=Broken())


def _reason(path, **kw) -> VideoRejected:
    with pytest.raises(VideoRejected) as ei:
        sample_video_isolated(str(path), **kw)
    return ei.value


def test_rejections_keep_their_reason(media, tmp_path):
    empty, text = tmp_path / "empty.mp4", tmp_path / "text.mp4"
    empty.write_bytes(b"")
    text.write_text("not a video\n" * 100)
    assert _reason(empty).reason == "empty_file"
    assert _reason(text).reason == "not_a_video"
    assert _reason(media["audio"]).reason == "no_video_stream"
    assert _reason(media["gop30"], limits=DecodeLimits(max_pixels=320 * 179)).reason == "absurd_dimensions"
    assert _reason(media["gop30"], limits=DecodeLimits(max_duration_s=2)).reason == "duration_out_of_range"
    assert _reason(media["gop30"], limits=DecodeLimits(time_limit_s=0.0)).reason == "decode_timeout"


def test_arguments_and_missing_files_fail_in_the_caller(media, tmp_path):
    with pytest.raises(ValueError):
        sample_video_isolated(media["gop30"], fps=0)
    with pytest.raises(ValueError):
        sample_video_isolated(media["gop30"], limits=DecodeLimits(max_memory_bytes=0))
    with pytest.raises(FileNotFoundError):
        sample_video_isolated(tmp_path / "nope.mp4")


def _children() -> set[int]:
    pids = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            text = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread (of Spark's, a server's) that ended meanwhile
            continue
        pids.update(int(p) for p in text)
    return pids


def test_a_read_that_never_returns_is_killed_at_the_time_limit(tmp_path):
    """A pipe nobody writes to blocks inside open()/read(), where no deadline check runs
    (a stalled network filesystem looks the same); the parent kills the child at its
    wall-clock backstop."""
    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)
    before = _children()
    got: dict = {}

    def decode():
        t0 = time.monotonic()
        try:
            sample_video_isolated(str(fifo), limits=DecodeLimits(time_limit_s=0.5))
        except VideoRejected as exc:
            got["err"] = exc
        got["elapsed"] = time.monotonic() - t0

    caller = threading.Thread(target=decode, daemon=True)
    caller.start()
    caller.join(timeout=30)
    if caller.is_alive():  # the hang was not contained: release it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("a decode blocked in open() was not killed")
    err, elapsed = got["err"], got["elapsed"]
    assert err.reason == "decode_timeout", err
    assert "killed" in err.message
    backstop = 0.5 * DecodeLimits().wall_factor + HARD_KILL_GRACE_S  # a blocked read uses no CPU: wall clock
    assert backstop <= elapsed < backstop + 5
    assert _children() == before  # reaped: no zombie, no orphan


def _blocked(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_child_that_dies_from_a_signal_is_decode_crashed(tmp_path, sig):
    """What a crash inside FFmpeg (SIGSEGV) or the kernel's OOM killer (SIGKILL) does to the
    decoding process; the caller survives and gets a reason."""
    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)
    before = _children()
    killed = []

    def crash_the_child():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not killed:
            for pid in _children() - before:
                if _blocked(pid):  # inside the decode, not still in fork's bookkeeping
                    os.kill(pid, sig)
                    killed.append(pid)
            time.sleep(0.01)

    killer = threading.Thread(target=crash_the_child)
    killer.start()
    t0 = time.monotonic()
    try:
        err = _reason(fifo, limits=DecodeLimits(time_limit_s=20))
    finally:
        killer.join()
    assert killed, "no child process was seen"
    assert err.reason == "decode_crashed" and sig.name in err.message, err
    assert time.monotonic() - t0 < 10  # reported when it died, not at the time limit
    assert _children() == before


@pytest.fixture(scope="module")
def uhd_video(tmp_path_factory):
    # the largest frame the default pixel limit admits; 3 frames, about 1 s to encode
    return make_video(tmp_path_factory.mktemp("uhd") / "uhd.mp4", n=3, w=4096, h=2304, gop=30)


def test_a_decode_over_the_memory_cap_is_memory_limit(uhd_video):
    """Run in a fresh interpreter: the cap is on address space the child adds, and this
    test process may hold enough free heap (from encoding videos) to hide a small cap."""
    code = (
        "import json, resource, sys\n"
        "from percolate.video.isolation import sample_video_isolated\n"
        "from percolate.video.limits import DecodeLimits, VideoRejected\n"
        "out = {'limit_before': resource.getrlimit(resource.RLIMIT_AS)}\n"
        "for mb in (8, 2048):\n"
        "    try:\n"
        "        info, frames = sample_video_isolated(sys.argv[1], limits=DecodeLimits(max_memory_bytes=mb << 20))\n"
        "        out[mb] = ['ok', len(frames)]\n"
        "    except VideoRejected as e:\n"
        "        out[mb] = [e.reason, e.message]\n"
        "out['limit_after'] = resource.getrlimit(resource.RLIMIT_AS)\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, uhd_video], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["8"][0] == "memory_limit", out
    assert str(8 << 20) in out["8"][1] or "memory" in out["8"][1]
    assert out["2048"] == ["ok", 1], out  # the same file decodes under the default cap
    assert out["limit_after"] == out["limit_before"]  # the caller's own limits are untouched
