"""The isolated decode's parent against a child that misbehaves, and the child's confinement.

The child is a fork of this process, so replacing `stream_video` here (monkeypatch) is what
the child runs in place of the real decoder: a stand-in for a decoder taken over by a file.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import threading
import time
from dataclasses import asdict

import pytest
from PIL import Image

from percolate.video import isolation, sandbox
from percolate.video.isolation import sample_video_isolated
from percolate.video.limits import DecodeLimits, DecoderUnavailable, SampledFrame, VideoInfo, VideoRejected

INFO = VideoInfo(duration_s=5.0, width=64, height=48, codec="h264", avg_fps=30.0, rotation=0,
                 decode_mode="all", keyframe_interval_s=1.0)


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def _frame(index: int, data: bytes, width: int = 64, height: int = 48) -> SampledFrame:
    return SampledFrame(frame_index=index, ts_ms=index * 1000, width=width, height=height, jpeg=data)


def _fake_decoder(monkeypatch, behave):
    def fake(path, sink, **kwargs):
        return behave(sink)
    monkeypatch.setattr(isolation, "stream_video", fake)


def _rejected(path, **kw) -> VideoRejected:
    with pytest.raises(VideoRejected) as ei:
        sample_video_isolated(str(path), **kw)
    return ei.value


def test_a_well_behaved_stand_in_passes(monkeypatch, media):
    jpeg = _image("JPEG")
    _fake_decoder(monkeypatch, lambda sink: [sink(_frame(i, jpeg)) for i in range(3)] and INFO)
    info, frames = sample_video_isolated(media["gop30"])
    assert info == INFO and [f.frame_index for f in frames] == [0, 1, 2]


@pytest.mark.parametrize("case", ["png", "wrong_size", "duplicate_index", "oversized_json", "non_finite",
                                  "claimed_reason"])
def test_a_child_sending_garbage_is_bad_decoder_output(monkeypatch, media, case):
    jpeg = _image("JPEG")

    def behave(sink):
        if case == "png":
            sink(_frame(0, _image("PNG")))
        elif case == "wrong_size":
            sink(_frame(0, jpeg, width=640, height=480))
        elif case == "duplicate_index":
            sink(_frame(0, jpeg))
            sink(_frame(0, jpeg))
        elif case == "oversized_json":
            return VideoInfo(**{**asdict(INFO), "codec": "x" * 200_000})
        elif case == "non_finite":
            return VideoInfo(**{**asdict(INFO), "duration_s": float("inf")})
        elif case == "claimed_reason":
            raise VideoRejected("missing_user", "a child may not say this")
        return INFO

    _fake_decoder(monkeypatch, behave)
    err = _rejected(media["gop30"])
    assert err.reason == "bad_decoder_output", err


class _Scorer:  # what the parent is told to expect: scored frames
    size, batch = (16, 9), 4

    def score(self, inputs):
        raise AssertionError("the stand-in child does not call it")

    def keep(self, frame_index, score):
        return True


@pytest.mark.parametrize("case", ["good", "score_over_one", "nan_location", "negative_flops", "unscored",
                                  "scored_unasked"])
def test_scored_frames_are_checked_like_the_rest(monkeypatch, media, case):
    """A scored frame (the prefilter in the child) must carry a score and location in [0, 1] and a
    FLOP count; it may come without its JPEG; a scorer's child sends nothing but scored frames,
    and a child without one none."""
    jpeg = _image("JPEG")
    scores = {"good": (0.4, 0.5, 0.5, 1e6), "score_over_one": (1.5, 0.5, 0.5, 1e6),
              "nan_location": (0.4, float("nan"), 0.5, 1e6), "negative_flops": (0.4, 0.5, 0.5, -1.0),
              "unscored": None, "scored_unasked": (0.4, 0.5, 0.5, float("nan"))}[case]

    def behave(sink):
        sink(SampledFrame(frame_index=0, ts_ms=0, width=64, height=48, jpeg=jpeg, scores=scores))
        sink(SampledFrame(frame_index=1, ts_ms=1000, width=64, height=48, jpeg=b"", scores=scores))
        return INFO

    _fake_decoder(monkeypatch, behave)
    scorer = None if case == "scored_unasked" else _Scorer()
    if case == "good":
        info, frames = sample_video_isolated(media["gop30"], scorer=scorer)
        assert [(f.jpeg == jpeg, f.scores) for f in frames] == [(True, scores), (False, scores)]
        return
    assert _rejected(media["gop30"], scorer=scorer).reason == "bad_decoder_output"


def test_more_frames_than_the_cap_is_too_many_frames(media):
    assert len(sample_video_isolated(media["gop30"])[1]) == 5
    err = _rejected(media["gop30"], limits=DecodeLimits(max_frames=2))
    assert err.reason == "too_many_frames" and "more than 2" in err.message
    err = _rejected(media["gop30"], limits=DecodeLimits(max_sampled_bytes=1000))
    assert err.reason == "too_many_frames"


def test_the_default_cap_follows_duration_and_rate(monkeypatch, media):
    """A child that keeps sending frames of a 5 s limit at 1 frame/s is stopped at 7 frames."""
    jpeg = _image("JPEG")

    def flood(sink):
        for i in range(10_000):
            sink(_frame(i, jpeg))
        return INFO

    _fake_decoder(monkeypatch, flood)
    err = _rejected(media["gop30"], limits=DecodeLimits(max_duration_s=5))
    assert err.reason == "too_many_frames" and "more than 7" in err.message


def test_the_child_finds_nothing_to_steal(monkeypatch, media, tmp_path):
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = hunter2\n")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def snoop(sink):
        tries = {
            "env": lambda: "hunter2" in repr(dict(os.environ)) and "leaked",
            "proc_env": lambda: b"hunter2" in open("/proc/self/environ", "rb").read() and "leaked",
            "parent_env": lambda: b"hunter2" in open(f"/proc/{os.getppid()}/environ", "rb").read() and "leaked",
            "file": lambda: "hunter2" in secret.read_text() and "leaked",
            "socket": lambda: socket.socket().connect(("127.0.0.1", port)) or "leaked",
            "inherited_fd": lambda: os.fstat(listener.fileno()) and "leaked",
        }
        outcome = []
        for name, attempt in tries.items():
            try:
                outcome.append(f"{name}:{attempt() or 'nothing'}")
            except OSError as exc:
                outcome.append(f"{name}:{exc.errno}")
        return VideoInfo(**{**asdict(INFO), "codec": ";".join(o.split(":")[1] for o in outcome)[:64]})

    _fake_decoder(monkeypatch, snoop)
    try:
        info, _ = sample_video_isolated(media["gop30"])
    finally:
        listener.close()
    results = info.codec.split(";")
    assert "leaked" not in results, results
    support = sandbox.support()
    env, proc_env, parent_env, file_, sock, fd = results
    assert env == "nothing"
    assert fd == "9"  # EBADF: the listening socket was closed in the child
    if support["files"]:
        assert {proc_env, parent_env, file_} == {"13"}  # EACCES
    if support["seccomp"]:
        assert sock == "1"  # EPERM
    # the test process itself is untouched
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "hunter2"


def test_the_child_still_reads_its_input(media):
    info, frames = sample_video_isolated(media["gop30"])
    assert frames and info.codec == "h264"


def test_a_sandbox_that_cannot_be_set_up_fails_the_task_not_the_video(monkeypatch, media):
    def broken(path, fd):
        raise OSError(38, "Function not implemented")
    monkeypatch.setattr(isolation, "confine", broken)
    with pytest.raises(DecoderUnavailable, match="could not confine"):
        sample_video_isolated(media["gop30"])


def test_time_is_cpu_time_not_wall_clock(media):
    """A child stopped (a machine busy with other work) for longer than its limit still
    finishes; the wall-clock backstop is `wall_factor` times the limit."""
    before = set(_children())
    stopped = []

    def pause_the_child():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not stopped:
            for pid in set(_children()) - before:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
                time.sleep(1.5)
                os.kill(pid, signal.SIGCONT)
                return
            time.sleep(0.001)

    thread = threading.Thread(target=pause_the_child)
    thread.start()
    try:
        info, frames = sample_video_isolated(media["gop30"], limits=DecodeLimits(time_limit_s=1.0))
    finally:
        thread.join()
    assert stopped and len(frames) == 5


def test_a_child_burning_cpu_silently_is_killed_at_its_cpu_limit(monkeypatch, media):
    def spin(sink):
        while True:
            pass

    _fake_decoder(monkeypatch, spin)
    t0 = time.monotonic()
    err = _rejected(media["gop30"], limits=DecodeLimits(time_limit_s=0.5, wall_factor=20))
    assert err.reason == "decode_timeout" and "CPU seconds" in err.message, err
    assert time.monotonic() - t0 < 6


def _children() -> list[int]:
    pids = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return pids


def test_a_child_that_lingers_after_its_last_word_is_not_waited_for(monkeypatch, media):
    """The result counts once the child has said its last word; a child that then keeps its
    pipe open is killed a second later, not at the wall-clock limit."""
    real_exit = os._exit

    def linger(code):  # runs in the child only: the parent never calls os._exit
        time.sleep(60)
        real_exit(code)

    monkeypatch.setattr(isolation.os, "_exit", linger)
    t0 = time.monotonic()
    info, frames = sample_video_isolated(media["gop30"], limits=DecodeLimits(time_limit_s=30))
    assert len(frames) == 5 and info.codec == "h264"
    assert time.monotonic() - t0 < 5
