"""The sampling transform on the shared local session, with videos written by the test."""

from __future__ import annotations

import pytest

from percolate.transforms.sampling import frames_of, manifest_frame, outcomes_of, sample_videos
from percolate.video.limits import DecodeLimits
from media import make_video
from percolate.core.layout import video_key
from percolate.io.store import LocalStore

pytestmark = pytest.mark.spark
DATE = "2026-01-01"


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    store = LocalStore(root)
    work = tmp_path_factory.mktemp("media")
    good = make_video(work / "good.mp4", n=150, gop=30)          # 5 s at 30 fps
    sparse = make_video(work / "sparse.mp4", n=90, gop=90)       # 3 s, one keyframe
    (work / "text.mp4").write_text("this is not a video\n")
    rows = []
    for call_id, path in [("good", good), ("sparse", sparse), ("text", work / "text.mp4")]:
        key = video_key(DATE, call_id)
        store.put_file(key, path)
        rows.append({"call_id": call_id, "user_id": f"user-{call_id}", "video_key": key, "size_bytes": 1})
    rows.append({"call_id": "gone", "user_id": "user-gone", "video_key": video_key(DATE, "gone"), "size_bytes": 0})
    return store, rows


def test_sampling_keeps_one_frame_per_second_and_quarantines_bad_files(spark, day):
    store, rows = day
    sampled = sample_videos(manifest_frame(spark, rows), store_uri=store.uri, endpoint_url=None, fps=1.0,
                            max_side=160, jpeg_quality=80, limits=DecodeLimits()).cache()
    frames = frames_of(sampled).orderBy("call_id", "frame_index").collect()
    by_call = {}
    for f in frames:
        by_call.setdefault(f.call_id, []).append(f)
    assert [f.frame_index for f in by_call["good"]] == [0, 1, 2, 3, 4]
    assert [f.ts_ms for f in by_call["good"]] == [0, 1000, 2000, 3000, 4000]
    assert [f.frame_index for f in by_call["sparse"]] == [0, 1, 2]
    assert {f.decode_mode for f in by_call["good"]} == {"keyframes"}
    assert {f.decode_mode for f in by_call["sparse"]} == {"all"}
    assert all(f.width == 160 and f.height == 90 and f.jpeg[:2] == b"\xff\xd8" for f in frames)
    assert all(f.user_id == f"user-{f.call_id}" for f in frames)

    outcomes = {o.call_id: o for o in outcomes_of(sampled).collect()}
    assert outcomes["good"].status == "ok" and outcomes["good"].frames == 5
    assert outcomes["text"].status == "quarantined" and outcomes["text"].reason == "not_a_video"
    assert outcomes["gone"].status == "quarantined" and outcomes["gone"].reason == "missing_file"
    assert set(by_call) == {"good", "sparse"}  # quarantined videos contribute no frames


def test_a_decode_over_the_memory_cap_is_quarantined_in_the_job(spark, tmp_path):
    """Each video is decoded in a child forked by the Python worker, with the memory cap of
    the job's limits: a frame too big for it costs that video only."""
    store = LocalStore(tmp_path / "store")
    rows = []
    for call_id, path in [("uhd", make_video(tmp_path / "uhd.mp4", n=3, w=4096, h=2304, gop=30)),
                          ("small", make_video(tmp_path / "small.mp4", n=60, w=160, h=90, gop=30))]:
        key = video_key(DATE, call_id)
        store.put_file(key, path)
        rows.append({"call_id": call_id, "user_id": "u", "video_key": key, "size_bytes": 1})
    sampled = sample_videos(manifest_frame(spark, rows), store_uri=store.uri, endpoint_url=None, fps=1.0,
                            max_side=160, jpeg_quality=80, limits=DecodeLimits(max_memory_bytes=8 << 20))
    outcomes = {o.call_id: o for o in outcomes_of(sampled).collect()}
    assert (outcomes["uhd"].status, outcomes["uhd"].reason) == ("quarantined", "memory_limit"), outcomes["uhd"].message
    assert (outcomes["small"].status, outcomes["small"].frames) == ("ok", 2), outcomes["small"].message


def test_the_decoder_scores_every_frame_and_keeps_the_jpegs_the_night_needs(spark, day, tmp_path):
    """The prefilter in the decoder: every frame gets a score, location and FLOPs close to what
    scoring its JPEG gives (the decoder's area-scaled frame against the JPEG's draft); the
    JPEG is kept for the frames at or over the threshold and those whose audit draw is under
    the keep rate, and for no other; the model's CPU goes to its own accumulator; outcome rows
    stay unscored."""
    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.transforms.audit import draw_value
    from percolate.transforms.sampling import PrefilterStep, scored_frames, scoring_figures
    from percolate.transforms.scoring import mark_passed, score_frames

    store, rows = day
    registry_store = LocalStore(tmp_path / "registry")
    registry = ModelRegistry(registry_store)
    ensure_production(registry)
    version = registry.resolve("prefilter", "production")

    def run(threshold, keep_rate):
        step = PrefilterStep(registry_store.uri, None, version, threshold, DATE, keep_rate,
                             cpu=spark.sparkContext.accumulator(0.0))
        sampled = sample_videos(manifest_frame(spark, rows), store_uri=store.uri, endpoint_url=None, fps=1.0,
                                max_side=640, jpeg_quality=80, limits=DecodeLimits(), prefilter=step).cache()
        fused = scored_frames(sampled).toPandas().sort_values(["call_id", "frame_index"]).reset_index(drop=True)
        return step, sampled, fused

    step, sampled, fused = run(0.0, 1.0)  # every frame kept: its JPEG can be scored again
    again = score_frames(frames_of(sampled), registry_uri=registry_store.uri, endpoint_url=None,
                         version=version).toPandas().sort_values(["call_id", "frame_index"]).reset_index(drop=True)
    assert len(fused) == len(again) == 8
    assert fused["jpeg"].notna().all()
    for column in ("prefilter_score", "loc_x", "loc_y"):
        assert fused[column].notna().all()
        assert abs(fused[column] - again[column]).max() < 0.1, column
    assert (fused["prefilter_flops"] > 0).all()
    assert step.cpu.value > 0
    figures = scoring_figures(mark_passed(scored_frames(sampled), 0.0))
    assert figures["frames_in"] == figures["frames_passed"] == 8 and figures["flops_per_frame"] > 0
    outcomes = sampled.where("row_kind = 'video'").select("prefilter_score").collect()
    assert len(outcomes) == 4 and all(o.prefilter_score is None for o in outcomes)
    sampled.unpersist()

    # none passes, none kept: every frame still scored, no JPEG made
    _, sampled, fused = run(1.01, 0.0)
    assert len(fused) == 8 and fused["prefilter_score"].notna().all() and fused["jpeg"].isna().all()
    assert frames_of(sampled).count() == 0
    sampled.unpersist()

    # half the draws kept, and the frames that pass: exactly those
    threshold = float(fused["prefilter_score"].median())
    _, sampled, fused = run(threshold, 0.5)
    wanted = [(s >= threshold) or draw_value(DATE, c, i) < 0.5
              for c, i, s in zip(fused["call_id"], fused["frame_index"], fused["prefilter_score"])]
    assert fused["jpeg"].notna().tolist() == wanted and 0 < sum(wanted) < 8
    assert frames_of(sampled).count() == sum(wanted)
    sampled.unpersist()

    plain = sample_videos(manifest_frame(spark, rows[:1]), store_uri=store.uri, endpoint_url=None, fps=1.0,
                          max_side=160, jpeg_quality=80, limits=DecodeLimits())
    assert {r.prefilter_score for r in plain.collect()} == {None}
