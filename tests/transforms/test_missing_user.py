"""A call without a user is quarantined as `missing_user` before it is decoded; the rest of the
day goes on, and nothing without a user reaches the tables the publish checks."""

from __future__ import annotations

import pytest

from expectations import validate
from media import make_video
from percolate.core.layout import video_key
from percolate.core.reasons import REASON_CODES
from percolate.core.tables import VIDEO_OUTCOMES, names
from percolate.io.store import LocalStore
from percolate.transforms.sampling import frames_of, manifest_frame, outcomes_of, sample_videos
from percolate.video.limits import DecodeLimits

pytestmark = pytest.mark.spark
DATE = "2026-01-02"


def test_a_call_without_a_user_is_quarantined_undecoded_and_the_day_goes_on(spark, tmp_path):
    store = LocalStore(tmp_path / "store")
    video = make_video(tmp_path / "v.mp4", n=60, gop=30)  # 2 s: a good video for every call
    rows = []
    for call_id, user in [("owned", "u1"), ("nobody", None), ("blank", "  ")]:
        store.put_file(video_key(DATE, call_id), video)
        rows.append({"call_id": call_id, "user_id": user, "video_key": video_key(DATE, call_id), "size_bytes": 1})
    sampled = sample_videos(manifest_frame(spark, rows), store_uri=store.uri, endpoint_url=None, fps=1.0,
                            max_side=160, jpeg_quality=80, limits=DecodeLimits()).cache()
    outcomes = {o.call_id: o for o in outcomes_of(sampled).collect()}
    assert (outcomes["owned"].status, outcomes["owned"].frames) == ("ok", 2)
    for call_id in ("nobody", "blank"):
        o = outcomes[call_id]
        assert (o.status, o.reason, o.message) == ("quarantined", "missing_user",
                                                   "the manifest names no user for this call")
        assert o.frames is None and o.decode_mode is None  # never decoded
    frames = frames_of(sampled).collect()
    assert {f.call_id for f in frames} == {"owned"} and all(f.user_id == "u1" for f in frames)

    # the hand-over's suite (critical checks only fail a run) takes the new reason
    report = validate(outcomes_of(sampled).toPandas(), "video_outcomes", gx_root=tmp_path / "gx",
                      run_name="missing_user", columns=names(VIDEO_OUTCOMES), reason_codes=list(REASON_CODES))
    assert report.success, report.critical_failures
