"""The files of the hostile day: good calls in unusual but valid forms, and broken or hostile
files, each with what the nightly run must make of it (frame indexes, or a quarantine reason)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from media import (make_audio_only, make_claimed_size_mjpeg, make_sparse_long, make_unknown_codec_avi,
                   make_video, reencode, truncate, zero_payload)
from percolate.core.layout import video_key
from percolate.io.manifest import write_manifest
from percolate.io.store import LocalStore

FPS = 30


@dataclass
class Call:
    call_id: str
    user_id: str
    ext: str
    path: str | None  # None: in the manifest, not in the store
    buckets: list[int] = field(default_factory=list)  # good calls: expected frame indexes at 1 frame/s
    reason: str | None = None  # bad calls: expected quarantine reason


def _buckets(n_frames: int, rate: int = FPS) -> list[int]:
    return list(range((n_frames - 1) // rate + 1))


def build_calls(work: Path) -> tuple[dict[str, Call], dict[str, Call]]:
    from synth import generate_day, load_truth

    work.mkdir(parents=True)
    synth = LocalStore(work / "synth")
    generate_day(synth, "2026-04-30", calls=2, seed=21, min_seconds=3, max_seconds=5, workers=1)
    calls = load_truth(synth, "2026-04-30")["calls"]
    gen = [(synth.path(c["video_key"]), c["user_id"], round(c["duration_s"] * c["fps"])) for c in calls]

    good = [Call("gen-h264-1", gen[0][1], "mp4", str(gen[0][0]), _buckets(gen[0][2])),
            Call("gen-h264-2", gen[1][1], "mp4", str(gen[1][0]), _buckets(gen[1][2]))]
    vp9, n = reencode(gen[0][0], work / "vp9.webm", "libvpx-vp9",
                      codec_options={"deadline": "realtime", "cpu-used": "8"})
    good.append(Call("gen-vp9-webm", gen[0][1], "webm", vp9, _buckets(n)))
    hevc, n = reencode(gen[1][0], work / "hevc.mp4", "libx265", codec_options={
        "preset": "ultrafast", "x265-params": "keyint=30:min-keyint=30:scenecut=0:bframes=0:log-level=error"})
    good.append(Call("gen-hevc-mp4", gen[1][1], "mp4", hevc, _buckets(n)))
    made = [
        ("h264-mkv", "mkv", dict(n=90), _buckets(90)),
        ("mjpeg-avi", "avi", dict(n=90, codec="mjpeg", pix="yuvj420p", fmt="avi"), _buckets(90)),
        ("vfr-mp4", "mp4", dict(time_base=Fraction(1, 1000),
                                pts=[0, 10, 400, 1200, 1250, 2100, 2900, 3500]), [0, 1, 2, 3]),
        ("rot90-mp4", "mp4", dict(n=60, rotation=-90), _buckets(60)),  # displayed 90 degrees clockwise
        ("odd-333x187-mp4", "mp4", dict(n=60, w=333, h=187, pix="yuv444p"), _buckets(60)),
        ("half-second-mp4", "mp4", dict(n=15), [0]),
    ]
    for i, (cid, ext, kw, buckets) in enumerate(made):
        good.append(Call(cid, f"u-test-{i:02d}", ext, make_video(work / f"{cid}.{ext}", **kw), buckets))

    plain = make_video(work / "plain.mp4", n=90)  # moov at the end
    fast = make_video(work / "fast.mp4", n=90, faststart=True)  # moov first
    (work / "empty.mp4").write_bytes(b"")
    (work / "text.mp4").write_text("meeting notes, not a video\n" * 50)
    Image.fromarray(np.zeros((90, 160, 3), np.uint8)).save(work / "image.mp4", format="PNG")
    bad = [
        ("bad-empty", "mp4", str(work / "empty.mp4"), "empty_file"),
        ("bad-text", "mp4", str(work / "text.mp4"), "not_a_video"),
        ("bad-image", "mp4", str(work / "image.mp4"), "not_a_video"),
        ("bad-hls-playlist", "mp4", None, "not_a_video"),  # written per day: names a stored file
        ("bad-truncated-header", "mp4", truncate(fast, work / "th.mp4", 600), "corrupt_stream"),
        ("bad-truncated-no-index", "mp4", truncate(plain, work / "tn.mp4", 0.5), "corrupt_stream"),
        ("bad-zeroed-payload", "mp4", zero_payload(fast, work / "zp.mp4"), "corrupt_stream"),
        ("bad-damaged-payload", "mp4", zero_payload(fast, work / "dp.mp4", from_fraction=0.3),
         "too_many_frames_failed"),
        ("bad-audio-only", "mp4", make_audio_only(work / "audio.mp4"), "no_video_stream"),
        ("bad-16000x16000", "avi", make_claimed_size_mjpeg(work / "huge.avi"), "absurd_dimensions"),
        ("bad-sliver-1280x16", "avi", make_video(work / "sliver.avi", codec="mjpeg", pix="yuvj420p", fmt="avi",
                                                 n=30, w=1280, h=16), "absurd_dimensions"),
        ("bad-10-hours", "mkv", make_sparse_long(work / "long.mkv", hours=10), "duration_out_of_range"),
        ("bad-unknown-codec", "avi", make_unknown_codec_avi(work / "codec.avi"), "unsupported_codec"),
        ("bad-missing", "mp4", None, "missing_file"),
    ]
    bad_calls = [Call(cid, f"u-bad-{i:02d}", ext, path, reason=reason)
                 for i, (cid, ext, path, reason) in enumerate(bad)]
    return {c.call_id: c for c in good}, {c.call_id: c for c in bad_calls}


def put_day(store: LocalStore, date: str, calls: list[Call]) -> None:
    rows = []
    for c in calls:
        key = video_key(date, c.call_id, c.ext)
        if c.call_id == "bad-hls-playlist":
            target = store.path(video_key(date, "gen-h264-1", "mp4"))
            store.put_bytes(key, f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:5.0,\n{target}\n"
                                 f"#EXTINF:5.0,\nfile://{target}\n#EXT-X-ENDLIST\n".encode())
        elif c.path is not None:
            store.put_file(key, c.path)
        size = store.path(key).stat().st_size if store.exists(key) else 0
        rows.append({"call_id": c.call_id, "user_id": c.user_id, "video_key": key, "size_bytes": size})
    write_manifest(store, date, rows)
