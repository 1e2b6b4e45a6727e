from __future__ import annotations

import pickle
import shutil

import av
import numpy as np
import pytest
from PIL import Image

from percolate.core.reasons import REASON_CODES
from percolate.video import decode as sampler
from percolate.video.decode import sample_video
from percolate.video.limits import DecodeLimits, SampledFrame, VideoInfo, VideoRejected

from media import (decode_jpeg, make_claimed_size_mjpeg, make_sparse_long, make_unknown_codec_avi,
                   make_video)


def _check_frames(frames: list[SampledFrame], expected_buckets):
    assert [f.frame_index for f in frames] == list(expected_buckets)
    ts = [f.ts_ms for f in frames]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    for f in frames:
        img = decode_jpeg(f.jpeg)
        assert img.shape == (f.height, f.width, 3)


# ---------------------------------------------------------------- good files

def test_gop30_one_sample_per_second(media):
    info, frames = sample_video(media["gop30"])
    assert isinstance(info, VideoInfo)
    assert info.decode_mode == "keyframes"
    assert (info.width, info.height, info.codec) == (320, 180, "h264")
    assert info.duration_s == pytest.approx(5.0, abs=0.05)
    assert info.avg_fps == pytest.approx(30.0)
    assert info.keyframe_interval_s == pytest.approx(1.0)
    assert info.rotation == 0 and info.errors == 0
    _check_frames(frames, range(5))
    assert [f.ts_ms for f in frames] == [0, 1000, 2000, 3000, 4000]
    assert (frames[0].width, frames[0].height) == (320, 180)
    assert info.frames_decoded == 5  # only one keyframe per bucket is decoded


def test_keyframes_and_all_modes_agree_for_gop30(media):
    ik, fk = sample_video(media["gop30"], mode="keyframes")
    ia, fa = sample_video(media["gop30"], mode="all")
    assert (ik.decode_mode, ia.decode_mode) == ("keyframes", "all")
    assert [(f.frame_index, f.ts_ms, f.width, f.height) for f in fk] == \
           [(f.frame_index, f.ts_ms, f.width, f.height) for f in fa]
    for a, b in zip(fk, fa):
        assert np.abs(decode_jpeg(a.jpeg) - decode_jpeg(b.jpeg)).mean() < 1.0
    assert ia.frames_decoded == 150 and ik.frames_decoded == 5


def test_auto_picks_all_for_gop90(media):
    info, frames = sample_video(media["gop90"], fps=1.0)
    assert info.decode_mode == "all"
    assert info.keyframe_interval_s == pytest.approx(3.0)
    _check_frames(frames, range(5))
    assert [f.ts_ms for f in frames] == [0, 1000, 2000, 3000, 4000]


def test_forced_keyframes_skips_buckets_without_keyframe(media):
    info, frames = sample_video(media["gop90"], mode="keyframes")
    assert info.decode_mode == "keyframes"
    _check_frames(frames, [0, 3])


def test_fps_2_on_gop30_needs_all_frames(media):
    info, frames = sample_video(media["gop30"], fps=2)
    assert info.decode_mode == "all"
    _check_frames(frames, range(10))
    assert [f.ts_ms for f in frames] == [500 * k for k in range(10)]


def test_fractional_fps(media):
    info, frames = sample_video(media["gop30"], fps=0.5)
    assert info.decode_mode == "keyframes"
    assert [f.ts_ms for f in frames] == [0, 2000, 4000]


def test_vfr_buckets_by_presentation_time(media):
    info, frames = sample_video(media["vfr"])
    # pts (ms): 0,10,400 | 1200,1250 | - | 3100,3900 | 4999
    _check_frames(frames, [0, 1, 3, 4])
    assert [f.ts_ms for f in frames] == [0, 1200, 3100, 4999]
    ia, fa = sample_video(media["vfr"], mode="all")
    assert [f.ts_ms for f in fa] == [0, 1200, 3100, 4999]


def test_mjpeg_avi_is_all_intra(media):
    info, frames = sample_video(media["mjpeg"])
    assert info.codec == "mjpeg" and info.container == "avi"
    assert info.decode_mode == "keyframes"
    _check_frames(frames, range(3))


def test_mpegts_relative_to_stream_start(media):
    info, frames = sample_video(media["ts"])
    _check_frames(frames, range(3))
    assert frames[0].ts_ms == 0  # TS timestamps start at 1.4 s; output is relative


@pytest.mark.slow
def test_vp9_webm(tmp_path):
    try:
        av.codec.Codec("libvpx-vp9", "w")
    except Exception:
        pytest.skip("no VP9 encoder")
    p = make_video(tmp_path / "v.webm", codec="libvpx-vp9", n=60, gop=30, w=160, h=90,
                   codec_options={"deadline": "realtime", "cpu-used": "8"})
    ia, fa = sample_video(p, mode="all")
    ik, fk = sample_video(p, mode="keyframes")
    assert ia.codec == "vp9"
    _check_frames(fa, range(2))
    assert [f.ts_ms for f in fa] == [f.ts_ms for f in fk]


def test_rotation_metadata_gives_upright_portrait(media):
    info, frames = sample_video(media["rot90"])
    assert info.rotation == 90
    assert (info.width, info.height) == (320, 180)  # coded size
    f = frames[0]
    assert (f.width, f.height) == (180, 320)
    img = decode_jpeg(f.jpeg)
    # the red top-left marker ends up top-right after a 90 deg clockwise rotation
    assert img[10, -10, 0] > 200 and img[10, -10, 2] < 60
    assert img[10, 10, 0] < 60


def test_sub_second_clip(media):
    info, frames = sample_video(media["short"])
    assert info.duration_s == pytest.approx(0.5, abs=0.05)
    _check_frames(frames, [0])


def test_downscale_keeps_aspect(tmp_path):
    p = make_video(tmp_path / "big.mp4", n=10, w=1280, h=720, gop=10)
    _, frames = sample_video(p)
    assert (frames[0].width, frames[0].height) == (640, 360)
    _, frames = sample_video(p, max_side=100, jpeg_quality=50)
    assert (frames[0].width, frames[0].height) == (100, 56)
    _, frames = sample_video(p, max_side=4000)  # never upscale
    assert (frames[0].width, frames[0].height) == (1280, 720)


def test_threads_parameter_same_result(media):
    _, f1 = sample_video(media["gop90"], threads=1)
    _, f2 = sample_video(media["gop90"], threads=2)
    assert [f.ts_ms for f in f1] == [f.ts_ms for f in f2]


def test_truncated_faststart_returns_partial_frames(media, tmp_path):
    data = open(media["gop30_fast"], "rb").read()
    p = tmp_path / "half.mp4"
    p.write_bytes(data[: len(data) // 2])
    for mode in ("auto", "all"):
        info, frames = sample_video(str(p), mode=mode)
        assert 1 <= len(frames) < 5
        _check_frames(frames, range(len(frames)))


# ---------------------------------------------------------------- bad files

def _reject(path, reason, **kw):
    with pytest.raises(VideoRejected) as ei:
        sample_video(str(path), **kw)
    assert ei.value.reason == reason, ei.value
    assert ei.value.reason in REASON_CODES
    return ei.value


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    _reject(p, "empty_file")


def test_text_renamed(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("hello world\n" * 200)
    _reject(p, "not_a_video")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_renamed_is_not_a_video(tmp_path, fmt):
    p = tmp_path / "img.mp4"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(p, format=fmt)
    _reject(p, "not_a_video")


def test_truncated_head_half_is_corrupt(media, tmp_path):
    data = open(media["gop30"], "rb").read()  # moov at the end
    p = tmp_path / "head.mp4"
    p.write_bytes(data[: len(data) // 2])
    _reject(p, "corrupt_stream")


def test_truncated_tail_half_is_not_a_video(media, tmp_path):
    data = open(media["gop30"], "rb").read()
    p = tmp_path / "tail.mp4"
    p.write_bytes(data[len(data) // 2:])
    _reject(p, "not_a_video")  # no container header at all: documented choice


def test_audio_only(media):
    _reject(media["audio"], "no_video_stream")


def test_hls_playlist_rejected(media, tmp_path):
    seg = tmp_path / "seg.ts"
    shutil.copy(media["ts"], seg)
    text = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:5\n"
            f"#EXTINF:3.0,\n{seg}\n#EXTINF:3.0,\nseg.ts\n#EXT-X-ENDLIST\n")
    for name in ("list.mp4", "list.m3u8"):
        p = tmp_path / name
        p.write_text(text)
        _reject(p, "not_a_video")


def test_playlists_blocked_by_format_whitelist_too(media, tmp_path, monkeypatch):
    """Even without the text sniff, FFmpeg's format whitelist refuses hls/concat."""
    monkeypatch.setattr(sampler, "looks_like_playlist", lambda head: False)
    shutil.copy(media["ts"], tmp_path / "seg.ts")
    (tmp_path / "list.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:3.0,\nseg.ts\n#EXT-X-ENDLIST\n")
    _reject(tmp_path / "list.m3u8", "not_a_video")
    shutil.copy(media["gop30"], tmp_path / "a.mp4")
    (tmp_path / "cat.mp4").write_text("ffconcat version 1.0\nfile 'a.mp4'\n")
    _reject(tmp_path / "cat.mp4", "not_a_video")


def test_zeroed_payload_is_corrupt(media, tmp_path):
    d = bytearray(open(media["gop30_fast"], "rb").read())
    j = d.find(b"mdat") + 204
    d[j:] = bytes(len(d) - j)
    p = tmp_path / "zero.mp4"
    p.write_bytes(bytes(d))
    _reject(p, "corrupt_stream", mode="all")
    _reject(p, "corrupt_stream")


def test_mostly_damaged_payload_too_many_failed(media, tmp_path):
    d = bytearray(open(media["gop30_fast"], "rb").read())
    j = d.find(b"mdat")
    cut = j + int((len(d) - j) * 0.3)
    d[cut:] = bytes(len(d) - cut)
    p = tmp_path / "damaged.mp4"
    p.write_bytes(bytes(d))
    _reject(p, "too_many_frames_failed", mode="all")


def test_lightly_damaged_payload_counts_errors(media, tmp_path):
    d = bytearray(open(media["gop30_fast"], "rb").read())
    j = d.find(b"mdat")
    cut = j + int((len(d) - j) * 0.8)
    d[cut:] = bytes(len(d) - cut)
    p = tmp_path / "damaged.mp4"
    p.write_bytes(bytes(d))
    info, frames = sample_video(str(p))
    assert info.errors > 0
    assert 1 <= len(frames) <= 5


def test_absurd_dimensions(media):
    _reject(media["gop30"], "absurd_dimensions", limits=DecodeLimits(max_pixels=320 * 179))


def test_duration_out_of_range(media):
    _reject(media["gop30"], "duration_out_of_range", limits=DecodeLimits(max_duration_s=2))
    _reject(media["gop30"], "duration_out_of_range", limits=DecodeLimits(min_duration_s=10))


@pytest.mark.parametrize("fmt,ext", [("avi", "avi"), ("matroska", "mkv")])
def test_16000x16000_frame_is_absurd_before_any_decode(tmp_path, fmt, ext):
    p = make_claimed_size_mjpeg(tmp_path / f"huge.{ext}", fmt=fmt)
    assert (tmp_path / f"huge.{ext}").stat().st_size < 20_000  # cheap: the size is only claimed
    err = _reject(p, "absurd_dimensions")
    assert "16000x16000" in err.message


def test_ten_hours_of_sparse_timestamps_is_out_of_range(tmp_path):
    for ext in ("mp4", "mkv"):
        err = _reject(make_sparse_long(tmp_path / f"long.{ext}", hours=10), "duration_out_of_range")
        assert "36000" in err.message
    info, frames = sample_video(make_sparse_long(tmp_path / "ok.mkv", hours=0.01))  # 36 s: fine
    assert [f.frame_index for f in frames] == [0, 1, 36]


def test_slivers_are_absurd(tmp_path):
    """Under 16 px on a side as stored, or once the long side is scaled to max_side (1280x16
    -> 640x8): the sampled-frames expectations would refuse such frames and stop the run."""
    tiny = make_video(tmp_path / "tiny.avi", codec="mjpeg", pix="yuvj420p", fmt="avi", n=30, w=8, h=8)
    assert "8x8" in _reject(tiny, "absurd_dimensions").message
    thin = make_video(tmp_path / "thin.avi", codec="mjpeg", pix="yuvj420p", fmt="avi", n=30, w=1280, h=16)
    assert "sampled as 640x8" in _reject(thin, "absurd_dimensions").message
    _, frames = sample_video(thin, max_side=1280)  # kept at full size, it is no sliver
    assert (frames[0].width, frames[0].height) == (1280, 16)


def test_unknown_codec(tmp_path):
    _reject(make_unknown_codec_avi(tmp_path / "codec.avi"), "unsupported_codec")


def test_decode_timeout(media):
    _reject(media["gop30"], "decode_timeout", limits=DecodeLimits(time_limit_s=0.0))


def test_missing_file_is_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        sample_video(str(tmp_path / "nope.mp4"))


def test_bad_arguments(media):
    with pytest.raises(ValueError):
        sample_video(media["gop30"], fps=0)
    with pytest.raises(ValueError):
        sample_video(media["gop30"], mode="fast")


def test_rejection_is_picklable():
    e = pickle.loads(pickle.dumps(VideoRejected("corrupt_stream", "boom")))
    assert (e.reason, e.message) == ("corrupt_stream", "boom")
    with pytest.raises(ValueError):
        VideoRejected("nonsense", "x")


def test_random_garbage_never_escapes(tmp_path):
    rng = np.random.default_rng(0)
    heads = [b"", b"\x00\x00\x00\x18ftypisom", b"\x1a\x45\xdf\xa3", b"RIFF\x00\x00\x00\x00AVI ",
             b"FLV\x01", b"OggS", b"\x47"]
    for i, head in enumerate(heads):
        p = tmp_path / f"g{i}.mp4"
        p.write_bytes(head + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
        with pytest.raises(VideoRejected):
            sample_video(str(p))
