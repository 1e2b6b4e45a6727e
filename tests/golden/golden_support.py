"""The golden set: sampled frames committed under tests/golden/frames/ and the shipped models'
outputs on them (tests/golden/expected.json), computed through the Spark workers' own code
(`percolate.inference`) without Spark.

Remake both after the shipped models change on purpose: `.venv/bin/python tests/golden/remake.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

GOLDEN = Path(__file__).resolve().parent
FRAMES_DIR = GOLDEN / "frames"
EXPECTED = GOLDEN / "expected.json"
# absolute tolerance on every probability: far above float noise between batch sizes or
# machines with the same instruction set (~1e-6), far below any change of weights or of
# preprocessing (a one-bit change of a JPEG decoder or a resize moves scores by 1e-3 and more)
TOLERANCE = 1e-4


def shipped_outputs(frames: pd.DataFrame, store_root: Path) -> pd.DataFrame:
    """The shipped models' outputs on `frames` (call_id, frame_index, ts_ms, jpeg): prefilter
    score, peak and FLOPs on every frame, then the heavy model on every frame (no reuse)."""
    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.inference import heavy_batches, prefilter_batches
    from percolate.io.store import LocalStore

    store = LocalStore(store_root)
    registry = ModelRegistry(store)
    ensure_production(registry)
    versions = {role: registry.resolve(role, "production") for role in ("prefilter", "heavy")}
    frames = frames.assign(user_id="golden", decode_mode="keyframes")
    keys = ["call_id", "user_id", "frame_index", "ts_ms"]
    scores = pd.concat(prefilter_batches(iter([frames]), store.uri, None, versions["prefilter"], keys))
    heavy_in = frames.merge(scores[["call_id", "frame_index", "prefilter_score", "loc_x", "loc_y"]],
                            on=["call_id", "frame_index"])
    heavy_keys = keys + ["prefilter_score", "loc_x", "loc_y", "decode_mode"]
    heavy = pd.concat(heavy_batches(iter([heavy_in]), store.uri, None, versions["heavy"], heavy_keys,
                                    reuse_tolerance=0.0))
    out = heavy.merge(scores[["call_id", "frame_index", "prefilter_flops"]], on=["call_id", "frame_index"])
    return out[["call_id", "frame_index", "prefilter_score", "loc_x", "loc_y", "prefilter_flops", "label",
                "score", "none_score"]].sort_values(["call_id", "frame_index"]).reset_index(drop=True)


def load_golden() -> tuple[pd.DataFrame, dict]:
    """The committed frames (with their JPEG bytes) and the expected document."""
    expected = json.loads(EXPECTED.read_text())
    rows = [dict(r, jpeg=(FRAMES_DIR / r["file"]).read_bytes()) for r in expected["frames"]]
    return pd.DataFrame(rows), expected
