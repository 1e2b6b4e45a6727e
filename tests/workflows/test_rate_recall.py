"""User-day recall per sampling rate from one rate's frames (`workflows.rate_recall`)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.media import make_video
from workflows.rate_recall import confirmed_pairs, exact_share, ladder_steps, recall_by_rate, subsample


@pytest.mark.parametrize("gop", [30, 15])
def test_subsampled_frames_are_what_the_sampler_keeps_at_the_lower_rate(tmp_path, gop):
    """The bucket rule: keeping every k-th frame of a 1 frame/s run gives the 1/k frames/s run's
    frames (the same timestamps and pixels), in keyframes mode and in full decode."""
    from percolate.video.decode import sample_video

    path = str(tmp_path / "v.mp4")
    make_video(path, n=30 * 9, gop=gop)
    _, full = sample_video(path, fps=1.0)
    fine = pd.DataFrame({"frame_index": [f.frame_index for f in full], "ts_ms": [f.ts_ms for f in full],
                         "jpeg": [f.jpeg for f in full]})
    for rate, k in ((0.5, 2), (0.25, 4)):
        info, coarse = sample_video(path, fps=rate)
        kept = subsample(fine, k)
        assert list(kept["ts_ms"]) == [f.ts_ms for f in coarse], (rate, info.decode_mode)
        assert list(kept["jpeg"]) == [f.jpeg for f in coarse]


def test_recall_and_precision_per_rate():
    # u1 sees brand A in frames 0-3 (confirmed at 1 and 0.5 frames/s, lost at 0.25: one frame left);
    # u2's B is seen in frames 1 and 3 only (gone at every lower rate); a false C at frame 0 and 4
    rows = [("u1", i, "A", 0.9) for i in range(4)] + [("u2", 1, "B", 0.9), ("u2", 3, "B", 0.9), ("u2", 2, "B", 0.1)]
    rows += [("u3", 0, "C", 0.95), ("u3", 4, "C", 0.95)]
    table = pd.DataFrame(rows, columns=["user_id", "frame_index", "label", "score"]).assign(
        call_id=lambda d: d["user_id"])
    rule = {"min_frames": 2, "min_score": 0.5}
    assert confirmed_pairs(table, **rule) == {("u1", "A"), ("u2", "B"), ("u3", "C")}
    truth = {("u1", "A"), ("u2", "B")}
    out = recall_by_rate(table, truth, rule, ["A", "B", "C"], base_fps=1.0)
    assert list(out) == ["1", "0.5", "0.25"]
    assert (out["1"]["recall"], out["1"]["precision"]) == (1.0, round(2 / 3, 4))
    assert (out["0.5"]["recall"], out["0.5"]["precision"]) == (0.5, 0.5)  # u2's B lost; C kept (0, 4)
    assert (out["0.25"]["recall"], out["0.25"]["precision"]) == (0.0, 0.0)
    assert out["0.5"]["true_user_brands"] == 2 and out["0.5"]["frames"] == 5
    # u2 has no frame 0: its first 0.5 frames/s bucket is served by frame 1, which the subsample drops
    assert exact_share(table[table["user_id"] != "u2"], 2) == 1.0 and exact_share(table, 2) == round(5 / 6, 4)
    assert ladder_steps(0.5) == {0.5: 1, 0.25: 2} and ladder_steps(0.3) == {}


def test_the_evaluation_scores_each_rate_against_the_full_rate_truth():
    from workflows.evaluate import rate_figures, sampled_fps

    table = pd.DataFrame({"call_id": "c", "user_id": "u1", "frame_index": range(4), "label": "A", "score": 0.9,
                          "true_label": ["A", None, None, None]})
    heavy = {"aggregation": {"min_frames": 2, "min_score": 0.5}}
    out = rate_figures(table, ["A"], heavy, {sampled_fps({"sampler": '{"fps": 1.0}'})})
    assert {r: v["recall"] for r, v in out.items()} == {"1": 1.0, "0.5": 1.0, "0.25": 0.0}
    assert rate_figures(table, ["A"], heavy, {1.0, 2.0}) == {}  # days at different rates: not comparable
