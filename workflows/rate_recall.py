"""What a lower sampling rate costs in quality: user-day precision and recall at each rate of
the budget ladder, measured on an evaluated day's own frames.

The sampler keeps the first frame of each bucket `floor(t * fps)` (`percolate.video.decode`).
At `fps / k` the bucket `j` is the union of the `fps` buckets `j*k .. j*k+k-1`, so its frame
is the first frame of bucket `j*k` whenever that bucket has one: keeping the frames whose
`frame_index % k == 0` is exactly what a run at `fps / k` samples when every fine bucket has
a frame (constant frame rate: the generated days) and the decode mode is the same. Where it
is not (a gap in the timestamps; a GOP between `1/fps` and `k/fps` seconds, decoded whole at
`fps` but keyframes-only at `fps / k`, which takes the bucket's keyframe instead of its first
frame), the real run's frame is at most one coarse bucket away; `exact_share` says how many
coarse buckets are served exactly. The prefilter scores frames one at a time; the heavy model
reuses an output only for an unchanged input, which a lower-rate run would recompute to
within the reuse tolerance.

Recall is against the user-brands visible in the full-rate sample, so a lower rate is charged
for what it no longer sees.
"""

from __future__ import annotations

import pandas as pd

from percolate.core.costing import RATE_LADDER


def ladder_steps(base_fps: float, ladder: tuple[float, ...] = RATE_LADDER) -> dict[float, int]:
    """rate -> k for the ladder's rates that are `base_fps / k` for a whole k."""
    out = {}
    for rate in ladder:
        k = round(base_fps / rate) if rate <= base_fps else 0
        if k >= 1 and abs(base_fps / k - rate) < 1e-9:
            out[rate] = k
    return out


def subsample(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """The frames a run at 1/k of the table's rate keeps (see the module's docstring)."""
    return table[table["frame_index"] % k == 0]


def exact_share(table: pd.DataFrame, k: int) -> float | None:
    """Share of coarse buckets (frame_index // k) with a frame whose first fine bucket has one."""
    coarse = table[["call_id", "frame_index"]].assign(bucket=table["frame_index"] // k)
    buckets = coarse[["call_id", "bucket"]].drop_duplicates()
    if not len(buckets):
        return None
    return round(float((coarse["frame_index"] % k == 0).sum()) / len(buckets), 4)


def confirmed_pairs(table: pd.DataFrame, min_frames: int, min_score: float) -> set[tuple[str, str]]:
    """The user-day rule (`percolate.transforms.publishing.build_user_brand_daily`) on a frame
    table: a user-brand is confirmed by `min_frames` frames whose best brand scores >= `min_score`."""
    hits = table[table["label"].notna() & table["user_id"].notna()
                 & (pd.to_numeric(table["score"], errors="coerce") >= float(min_score))]
    counts = hits.groupby(["user_id", "label"]).size()
    return {(u, b) for (u, b), n in counts.items() if n >= int(min_frames)}


def recall_by_rate(table: pd.DataFrame, true_pairs: set, aggregation: dict, class_names: list[str],
                   base_fps: float) -> dict[str, dict]:
    """Per ladder rate: user-day precision and recall (against `true_pairs`, the full-rate
    truth), frames kept and the share of buckets served exactly. Keys are the rates as text."""
    from workflows.scoring import score_pairs

    out = {}
    for rate, k in ladder_steps(base_fps).items():
        kept = subsample(table, k)
        scored = score_pairs(true_pairs, confirmed_pairs(kept, aggregation["min_frames"], aggregation["min_score"]),
                             class_names)
        out[f"{rate:g}"] = {"precision": scored["precision"], "recall": scored["recall"],
                            "correct": scored["correct"], "predicted_user_brands": scored["predicted_user_brands"],
                            "true_user_brands": scored["true_user_brands"], "frames": int(len(kept)),
                            "exact_share": exact_share(table, k)}
    return out


def format_rates(by_rate: dict[str, dict]) -> str:
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    return "Per sampling rate (pooled user-days, frames subsampled by bucket): " + "; ".join(
        f"{rate} frames/s P {pct(r['precision'])} R {pct(r['recall'])} ({r['frames']} frames)"
        for rate, r in by_rate.items())
