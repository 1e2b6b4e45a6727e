"""Good data frames for every hand-over, sized `n` rows, with the columns the pipeline's
table definitions give them, for the expectation tests."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from percolate.handover import COLUMNS
from percolate.core.tables import names

BRANDS = [f"brand_{i}" for i in range(10)]
REASONS = ["decode_error", "corrupt", "too_long"]


def _frames(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    return pd.DataFrame(
        {
            "call_id": [f"call-{i // 50:05d}" for i in idx],
            "user_id": [f"user-{i // 200:04d}" for i in idx],
            "frame_index": (idx % 50).astype("int64"),
            "ts_ms": ((idx % 50) * 1000).astype("int64"),
        }
    ).assign(_rng=rng.random(n))


def manifest(n: int = 100) -> pd.DataFrame:
    idx = np.arange(n)
    return pd.DataFrame(
        {
            "call_id": [f"call-{i:05d}" for i in idx],
            "user_id": [f"user-{i // 4:04d}" for i in idx],
            "video_key": [f"videos/call-{i:05d}.mp4" for i in idx],
            "size_bytes": (1000 + idx * 7).astype("int64"),
        }
    )


def sampled_frames(n: int = 500) -> pd.DataFrame:
    df = _frames(n).drop(columns="_rng")
    df["width"] = 640
    df["height"] = 360
    df["jpeg_bytes"] = (20_000 + np.arange(n) % 977).astype("int64")
    df["decode_mode"] = np.where(np.arange(n) % 2 == 0, "keyframes", "all")
    return df


def video_outcomes(n: int = 100) -> pd.DataFrame:
    idx = np.arange(n)
    quarantined = idx % 10 == 0
    return pd.DataFrame(
        {
            "call_id": [f"call-{i:05d}" for i in idx],
            "status": np.where(quarantined, "quarantined", "ok"),
            "reason": [REASONS[i % 3] if q else None for i, q in zip(idx, quarantined)],
            "duration_s": (idx % 300).astype(float) + 0.5,
            "user_id": [f"user-{i // 4:04d}" for i in idx],
            "video_key": [f"videos/call-{i:05d}.mp4" for i in idx],
            "message": [("bad file" if q else None) for q in quarantined],
            "width": 640, "height": 360, "codec": "h264", "decode_mode": "keyframes", "decode_errors": 0,
            "frames": (idx % 300).astype("int64"), "cpu_s": 0.5,
        }
    )


def prefilter_scores(n: int = 500) -> pd.DataFrame:
    df = _frames(n)
    df["prefilter_score"] = df.pop("_rng")
    df["loc_x"], df["loc_y"], df["prefilter_flops"] = 0.5, 0.25, 7_900_000
    df["passed"] = df["prefilter_score"] > 0.5
    return df


def heavy_predictions(n: int = 500) -> pd.DataFrame:
    df = _frames(n, seed=1)
    df["score"] = df.pop("_rng")
    df["prefilter_score"], df["loc_x"], df["loc_y"], df["decode_mode"] = 0.9, 0.5, 0.25, "keyframes"
    df["label"] = [BRANDS[i % len(BRANDS)] for i in range(n)]
    df["none_score"] = 1.0 - df["score"]
    df["is_detection"] = df["score"] > 0.7
    # every third frame reuses the output of the frame before it (an unchanged input)
    df["reused_from"] = pd.array([int(f) - 1 if i % 3 == 2 and f > 0 else None
                                  for i, f in enumerate(df["frame_index"])], dtype="Int32")
    return df


PROVENANCE = {"run_id": "run-2026-01-01", "prefilter_version": "prefilter-v3", "heavy_version": "heavy-v7",
              "prefilter_threshold": 0.5, "heavy_threshold": 0.7, "aggregation": '{"min_frames": 2}',
              "sampler": '{"fps": 1.0}', "heavy_reuse_tolerance": 4.0, "code_version": "abc123",
              "published_at": dt.datetime(2026, 1, 2, 3, 0)}


def frame_predictions(n: int = 500) -> pd.DataFrame:
    return heavy_predictions(n).assign(**PROVENANCE)


def user_brand_daily(n_users: int = 20) -> pd.DataFrame:
    rows = [
        {"user_id": f"user-{u:04d}", "brand": b, "frames": 1 + (u + j) % 5, "calls": 1, "max_score": 0.8,
         "mean_score": 0.75, "first_seen_call_id": "c1", "first_seen_ts_ms": 0, "last_seen_call_id": "c1",
         "last_seen_ts_ms": 1000, "confirmed": True, **PROVENANCE}
        for u in range(n_users)
        for j, b in enumerate(BRANDS[:3])
    ]
    return pd.DataFrame(rows)


def training_data(n: int = 500) -> pd.DataFrame:
    df = sampled_frames(n)[["call_id", "frame_index", "jpeg_bytes"]].copy()
    df["label"] = [BRANDS[i % len(BRANDS)] if i % 3 == 0 else None for i in range(n)]
    return df


def labels(n_users: int = 20) -> pd.DataFrame:
    """Imported labels as `percolate.transforms.labels.check_labels` returns them."""
    from percolate.transforms.labels import check_labels

    calls = pd.DataFrame({"call_id": [f"c{u}" for u in range(n_users)], "user_id": [f"user-{u:04d}" for u in
                          range(n_users)], "day": "2026-12-01", "status": "ok", "sampled_frames": 60})
    raw = pd.DataFrame([{"user_id": f"user-{u:04d}", "day": "2026-12-01", "brand": BRANDS[u % 3],
                         "verdict": "confirmed" if u % 4 else "rejected"} for u in range(n_users)]
                       + [{"user_id": f"user-{u:04d}", "day": "2026-12-01", "brand": BRANDS[0], "verdict": "rejected",
                           "call_id": f"c{u}", "frame_index": u, "source": "audit"} for u in range(n_users)])
    good, bad = check_labels(raw, arrived="2026-12-02", brands=BRANDS, calls=calls)
    assert bad.empty, bad
    return good


def audit_frames(n: int = 60) -> pd.DataFrame:
    """A night's audit sample as `percolate.transforms.audit.sample_audit` draws it."""
    strata = ["prefilter_rejected", "heavy_low_confidence", "prefilter_passed"]
    rows = [{"call_id": f"c{i % 7}", "user_id": f"user-{i % 7:04d}", "frame_index": i, "ts_ms": i * 1000,
             "stratum": strata[i % 3], "prefilter_score": 0.05 if i % 3 == 0 else 0.8, "passed": i % 3 != 0,
             "label": None if i % 3 == 0 else BRANDS[i % len(BRANDS)], "score": None if i % 3 == 0 else 0.5,
             "sampling_probability": 0.05 if i % 3 == 0 else 1.0, "stratum_frames": 400 if i % 3 == 0 else 20,
             **PROVENANCE} for i in range(n)]
    return pd.DataFrame(rows)


def cols(name: str) -> dict:
    """The `columns` parameter of suite `name`, as the pipeline gives it."""
    return {"columns": names(COLUMNS[name])}


GOOD = {
    "manifest": (manifest, cols("manifest")),
    "sampled_frames": (sampled_frames, cols("sampled_frames")),
    "video_outcomes": (video_outcomes, {"reason_codes": REASONS, **cols("video_outcomes")}),
    "prefilter_scores": (prefilter_scores, cols("prefilter_scores")),
    "heavy_predictions": (heavy_predictions, {"class_names": BRANDS, **cols("heavy_predictions")}),
    "frame_predictions": (frame_predictions, {"class_names": BRANDS, **cols("frame_predictions")}),
    "user_brand_daily": (user_brand_daily, {"class_names": BRANDS, **cols("user_brand_daily")}),
    "training_data": (training_data, {"class_names": BRANDS}),
    "labels": (labels, {"class_names": BRANDS, "verdicts": ["confirmed", "rejected"],
                        "sources": ["reorder_button", "audit", "import"], **cols("labels")}),
    "audit_frames": (audit_frames, {"class_names": BRANDS, "strata": ["prefilter_rejected", "heavy_low_confidence",
                                                                      "prefilter_passed"], **cols("audit_frames")}),
}
