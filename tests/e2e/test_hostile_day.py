"""A hostile day through the real nightly DAG (Airflow `dags test` -> spark-submit -> tables).

The day mixes good calls in unusual but valid forms (generated H.264 calls re-encoded as
WebM/VP9 and HEVC, H.264 in MKV, MJPEG in AVI, variable frame rate, rotation metadata, odd
dimensions, half a second) with broken and hostile files (zero bytes, text or an image
renamed .mp4, an HLS playlist naming a local file, truncated headers and truncated files
without their index, zeroed and damaged payloads, audio only, a 16000x16000 frame, a
1280x16 sliver, ten hours of timestamps, an unknown codec, a missing object). The day
before holds the same good files alone: the good calls' rows must be the same on both days.

Then: defects seeded into staged outputs stop the publish, leaving both published days
untouched; and a fixed file is processed by a rerun with nothing lost or duplicated.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from e2e_support import register_seeded_models, snapshots, without_volatile
from media import (decode_jpeg, make_audio_only, make_claimed_size_mjpeg, make_sparse_long,
                   make_unknown_codec_avi, make_video, reencode, truncate, zero_payload)
from percolate.core.settings import Settings
from percolate.core.layout import video_key
from percolate.io.stage import open_stage
from percolate.io.manifest import read_manifest, write_manifest
from workflows.launch import run_nightly, spark_submit
from percolate.report import format_funnel
from percolate.io.store import LocalStore

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.airflow, pytest.mark.spark]
YESTERDAY, TODAY = "2026-05-01", "2026-05-02"
TIME_LIMIT_S = 90.0  # through PERCOLATE_DECODE_TIME_LIMIT_S: the setting must reach the Spark job
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


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    settings = Settings(home=root / "home", store_uri=str(root / "store"))
    store = LocalStore(settings.store_uri)
    good, bad = build_calls(root / "work")
    put_day(store, YESTERDAY, list(good.values()))  # the good files alone
    put_day(store, TODAY, list(good.values()) + list(bad.values()))
    register_seeded_models(store)
    mp = pytest.MonkeyPatch()
    mp.setenv("PERCOLATE_HOME", str(settings.home))
    mp.setenv("PERCOLATE_STORE", settings.store_uri)
    mp.setenv("PERCOLATE_DECODE_TIME_LIMIT_S", str(TIME_LIMIT_S))
    summaries = {day: json.loads(run_nightly(settings, day).read_text()) for day in (YESTERDAY, TODAY)}
    exact = snapshots(settings, [YESTERDAY, TODAY], exact=True)  # one Spark child process for all
    published = {day: without_volatile(exact[day], {"dt"}) for day in (YESTERDAY, TODAY)}
    yield SimpleNamespace(settings=settings, store=store, good=good, bad=bad, summaries=summaries,
                          exact=exact, published=published, root=root)
    mp.undo()


def by_call(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["call_id"], []).append(r)
    return out


def test_bad_files_are_quarantined_and_good_calls_predicted_as_without_them(env):
    good, bad = env.good, env.bad
    summary = env.summaries[TODAY]
    assert summary["status"] == "success"
    assert (summary["videos"], summary["videos_ok"], summary["videos_quarantined"]) == (
        len(good) + len(bad), len(good), len(bad))
    today, yesterday = env.published[TODAY], env.published[YESTERDAY]

    # every bad file is in quarantine with its reason and a message; nothing else is
    assert {r["call_id"]: r["reason"] for r in today["quarantine"]} == {c: b.reason for c, b in bad.items()}
    assert all(r["message"] and r["video_key"] and r["user_id"] for r in today["quarantine"])
    assert yesterday["quarantine"] == []

    # every good call has one prediction row per second of video, in the right second
    frames = by_call(today["frame_predictions"])
    assert set(frames) == set(good)
    for call_id, call in good.items():
        assert [r["frame_index"] for r in frames[call_id]] == call.buckets, call_id
        for r in frames[call_id]:
            assert r["frame_index"] * 1000 <= r["ts_ms"] < (r["frame_index"] + 1) * 1000, (call_id, r)
    assert [r["ts_ms"] for r in frames["vfr-mp4"]] == [0, 1200, 2100, 3500]  # first frame of each second

    # the good calls' rows are exactly those of the day without the bad files
    assert today["frame_predictions"] == yesterday["frame_predictions"]
    assert today["user_brand_daily"] == yesterday["user_brand_daily"]

    # the decode limits came from the environment, through the job, into every row's provenance
    sampler = json.loads(today["frame_predictions"][0]["sampler"])
    assert sampler["limits"]["time_limit_s"] == TIME_LIMIT_S and sampler["limits"]["isolated"] is True


def test_sampled_frames_are_upright(env):
    path = open_stage(env.settings).uri("sample_frames", TODAY, "frames")
    frames = pq.read_table(path, columns=["call_id", "frame_index", "width", "height", "jpeg"]).to_pylist()
    got = by_call(frames)
    for rows in got.values():
        for r in rows:
            assert decode_jpeg(r["jpeg"]).shape == (r["height"], r["width"], 3)
    # stored 320x180, displayed rotated 90 degrees clockwise: portrait, the red top-left
    # marker of the test pattern ends up top right
    for r in got["rot90-mp4"]:
        img = decode_jpeg(r["jpeg"])
        assert (r["width"], r["height"]) == (180, 320)
        assert img[10, -10, 0] > 200 and img[10, -10, 2] < 60 and img[10, 10, 0] < 60
    for call_id, size in (("h264-mkv", (320, 180)), ("mjpeg-avi", (320, 180)), ("odd-333x187-mp4", (333, 187)),
                          ("half-second-mp4", (320, 180))):
        for r in got[call_id]:
            img = decode_jpeg(r["jpeg"])
            assert (r["width"], r["height"]) == size, call_id
            assert img[5, 5, 0] > 200 and img[5, -5, 0] < 60, call_id  # marker top left: not turned
    assert {(r["width"], r["height"]) for r in got["gen-hevc-mp4"] + got["gen-vp9-webm"]} == {(640, 360)}


def test_run_summary_shows_warnings_and_the_data_docs(env):
    summary = env.summaries[TODAY]
    warnings = json.loads(summary["warnings"])
    assert f"{len(env.bad)} videos quarantined" in warnings
    # the manifest's warning-level expectation: objects of 0 bytes (the empty and the missing file)
    assert any(w.startswith("manifest: expect_column_values_to_be_between(size_bytes, > 0) failed: 2 of")
               for w in warnings), warnings
    docs = Path(summary["data_docs"])
    assert docs.name == "index.html" and docs.is_file()
    index = docs.read_text(errors="replace")  # built for this run: it lists this run's validations
    assert all(f"{summary['run_id']}-{suite}" in index for suite in ("manifest", "video_outcomes", "frame_predictions"))
    (row,) = env.exact[TODAY]["pipeline_runs"]  # pipeline_runs records the same
    assert json.loads(row["warnings"]) == warnings and row["data_docs"] == str(docs)

    text = format_funnel(summary)  # what `percolate nightly` prints
    assert f"Data docs: {docs}" in text
    assert f"Warnings ({len(warnings)}):" in text and f"  - {len(env.bad)} videos quarantined" in text
    log = (env.settings.home / "logs" / f"nightly-{TODAY}.log").read_text()  # the DAG's report task
    assert f"Data docs: {docs}" in log and f"- {len(env.bad)} videos quarantined" in log


# ---- seeded defects in staged outputs --------------------------------------------------------


def out_of_range_scores(df):
    df.loc[df.index[:2], "score"] = [1.7, -0.2]
    return df


def null_user_ids(df):
    df.loc[df["call_id"] == "h264-mkv", "user_id"] = None
    return df


def duplicated_frames(df):
    import pandas as pd

    return pd.concat([df, df[df["call_id"] == "mjpeg-avi"].head(1)], ignore_index=True)


def unknown_brand(df):
    df.loc[df.index[2], "label"] = "Acme Beans"
    df.loc[df.index[2], "is_detection"] = True
    return df


# defect -> (what the failure must name: the expectation and the offending values)
DEFECTS = {
    out_of_range_scores: ("expect_column_values_to_be_between(score, 0..1) failed: 2 of", ["1.7", "-0.2"]),
    null_user_ids: ("expect_column_values_to_not_be_null(user_id) failed: 3 of", ["are null"]),
    duplicated_frames: ("expect_compound_columns_to_be_unique((call_id, frame_index)) failed: 2 of",
                        ["('mjpeg-avi', 0)"]),
    unknown_brand: ("expect_column_values_to_be_in_set(label, in {", ["'Acme Beans'"]),
}


def write_stage(folder: Path, table: pa.Table) -> None:
    shutil.rmtree(folder)
    folder.mkdir()
    pq.write_table(table, folder / "part-00000-seeded.parquet")


def test_seeded_defects_stop_the_publish_and_leave_published_days_untouched(env, tmp_path):
    from expectations import ValidationFailed
    from synth import BRAND_NAMES
    from percolate.handover import check

    settings = env.settings
    heavy = Path(open_stage(settings).uri("heavy", TODAY))
    run_id = open_stage(settings).read_metrics("heavy", TODAY)["run_id"]
    clean = pq.read_table(heavy)
    shutil.copytree(heavy, tmp_path / "heavy")
    before = {day: env.exact[day] for day in (YESTERDAY, TODAY)}  # as the fixture's runs published them

    def seeded(*defects) -> pa.Table:
        df = clean.to_pandas()
        for defect in defects:
            df = defect(df)
        return pa.Table.from_pandas(df, schema=clean.schema, preserve_index=False)

    try:
        # each defect alone, at the hand-over the DAG's validate_predictions task checks before publish
        for defect, (expectation, values) in DEFECTS.items():
            write_stage(heavy, seeded(defect))
            if defect is null_user_ids:  # tolerated here (a warning): the rows to publish must have users
                report = check(settings, "heavy_predictions", TODAY, run_id, class_names=list(BRAND_NAMES))
                assert any("expect_column_values_to_not_be_null(user_id)" in w for w in report.warnings)
                continue
            with pytest.raises(ValidationFailed) as err:
                check(settings, "heavy_predictions", TODAY, run_id, class_names=list(BRAND_NAMES))
            assert expectation in str(err.value) and all(v in str(err.value) for v in values), str(err.value)

        # the publish job's own audit (write, audit, publish) on all four at once: each is a
        # critical failure of the rows about to be published (one alone fails the audit)
        write_stage(heavy, seeded(*DEFECTS))
        with pytest.raises(RuntimeError, match="spark job publish failed"):
            spark_submit(settings, "publish", ["--date", TODAY, "--run-id", run_id], log_name="publish-defects")
        log = (settings.home / "logs" / "publish-defects.log").read_text()
        assert "ValidationFailed: validation of 'frame_predictions' failed (4 critical)" in log
        for expectation, values in DEFECTS.values():
            assert expectation in log and all(v in log for v in values), expectation
    finally:
        shutil.rmtree(heavy)
        shutil.copytree(tmp_path / "heavy", heavy)

    after = snapshots(settings, [YESTERDAY, TODAY], exact=True)
    assert {day: after[day] for day in before} == before  # not a row, not a run id, not a timestamp changed


# ---- after the seeded defects (which must have left the tables as they were) ------------------


def test_rerun_after_fixing_a_file_processes_it_and_loses_nothing(env):
    settings, store = env.settings, env.store
    before = env.published
    fixed = make_video(env.root / "work" / "fixed.mp4", n=90)
    key = video_key(TODAY, "bad-text", "mp4")
    store.put_file(key, fixed)  # the uploader sends the real video
    rows = read_manifest(store, TODAY)
    for r in rows:
        if r["call_id"] == "bad-text":
            r["size_bytes"] = os.path.getsize(fixed)
    write_manifest(store, TODAY, rows)

    summary = json.loads(run_nightly(settings, TODAY).read_text())
    after = snapshots(settings, [YESTERDAY, TODAY], drop={"dt"})
    assert summary["videos_ok"] == len(env.good) + 1
    assert after[YESTERDAY] == before[YESTERDAY]
    expected = {c: b.reason for c, b in env.bad.items() if c != "bad-text"}
    assert {r["call_id"]: r["reason"] for r in after[TODAY]["quarantine"]} == expected

    rows = after[TODAY]["frame_predictions"]
    keys = [(r["call_id"], r["frame_index"]) for r in rows]
    assert len(keys) == len(set(keys))  # no duplicates
    assert [r["frame_index"] for r in rows if r["call_id"] == "bad-text"] == [0, 1, 2]
    # every other row is still there, unchanged
    assert [r for r in rows if r["call_id"] != "bad-text"] == before[TODAY]["frame_predictions"]
    assert len(after[TODAY]["pipeline_runs"]) == 1
