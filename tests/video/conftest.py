"""Session-scoped synthetic media for the sampler tests."""

from __future__ import annotations

from fractions import Fraction

import pytest

from media import make_audio_only, make_video


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("sampler_media")
    m = {}
    m["gop30"] = make_video(d / "gop30.mp4", gop=30)
    m["gop30_fast"] = make_video(d / "gop30_fast.mp4", gop=30, faststart=True)
    m["gop90"] = make_video(d / "gop90.mp4", gop=90)
    m["gop90_b"] = make_video(d / "gop90_b.mp4", gop=90, codec_options={"bf": "3"})  # with B-frames
    m["rot90"] = make_video(d / "rot90.mp4", n=60, gop=30, rotation=-90)  # display: 90 deg clockwise
    m["short"] = make_video(d / "short.mp4", n=15, gop=30)  # 0.5 s
    m["mjpeg"] = make_video(d / "mjpeg.avi", codec="mjpeg", pix="yuvj420p", fmt="avi", n=90)
    m["ts"] = make_video(d / "seg.ts", fmt="mpegts", n=90)
    m["vfr"] = make_video(d / "vfr.mkv", time_base=Fraction(1, 1000),
                          pts=[0, 10, 400, 1200, 1250, 3100, 3900, 4999])
    m["audio"] = make_audio_only(d / "audio.mp4")
    return m
