"""Remake the golden set (tests/golden/frames/ and expected.json) from a generated day.

Run by hand after the shipped models change on purpose, and commit the result:

    .venv/bin/python tests/golden/remake.py

It generates a small seeded day (real-footage backgrounds among them), samples it with the
pipeline's decoder, keeps frames over real footage with and without a cup, and records the
shipped models' outputs on them.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_support import EXPECTED, FRAMES_DIR, TOLERANCE, shipped_outputs  # noqa: E402

DATE, CALLS, SEED = "2026-02-01", 36, 31
WITH_CUP, WITHOUT_CUP = 20, 16


def main() -> int:
    from models.shipped import SHIPPED_DIR, SUMS
    from percolate.io.store import LocalStore
    from percolate.video.decode import sample_video
    from synth import generate_day, label_at, load_truth

    with tempfile.TemporaryDirectory(prefix="percolate-golden-") as tmp:
        store = LocalStore(Path(tmp) / "store")
        generate_day(store, DATE, calls=CALLS, seed=SEED, backgrounds="all", min_seconds=6, max_seconds=12,
                     cup_share=0.8, distractor_share=0.5)
        truth = load_truth(store, DATE)
        rows = []
        for call in truth["calls"]:
            if not call["background"].startswith("clip:"):
                continue  # real footage only
            _, frames = sample_video(str(store.path(call["video_key"])))
            for f in frames:
                rows.append({"call_id": call["call_id"], "frame_index": f.frame_index, "ts_ms": f.ts_ms,
                             "background": call["background"], "truth": label_at(call, f.ts_ms / 1000),
                             "jpeg": f.jpeg})
        df = pd.DataFrame(rows)
        rng = np.random.default_rng(SEED)
        cup, none = df[df.truth.notna()], df[df.truth.isna()]
        picked = pd.concat([cup.iloc[np.sort(rng.choice(len(cup), min(WITH_CUP, len(cup)), replace=False))],
                            none.iloc[np.sort(rng.choice(len(none), min(WITHOUT_CUP, len(none)), replace=False))]])
        picked = picked.sort_values(["call_id", "frame_index"]).reset_index(drop=True)
        outputs = shipped_outputs(picked[["call_id", "frame_index", "ts_ms", "jpeg"]], Path(tmp) / "registry")
    if FRAMES_DIR.exists():
        shutil.rmtree(FRAMES_DIR)
    FRAMES_DIR.mkdir(parents=True)
    frames = []
    for row, out in zip(picked.itertuples(), outputs.itertuples()):
        name = f"{row.call_id}_{row.frame_index:03d}.jpg"
        (FRAMES_DIR / name).write_bytes(row.jpeg)
        frames.append({"file": name, "call_id": row.call_id, "frame_index": int(row.frame_index),
                       "ts_ms": int(row.ts_ms), "background": row.background, "truth": row.truth,
                       "prefilter_score": out.prefilter_score, "loc_x": out.loc_x, "loc_y": out.loc_y,
                       "prefilter_flops": int(out.prefilter_flops), "label": out.label, "score": out.score,
                       "none_score": out.none_score})
    EXPECTED.write_text(json.dumps({
        "tolerance": TOLERANCE, "day": {"date": DATE, "calls": CALLS, "seed": SEED},
        "shipped_sha256": (SHIPPED_DIR / SUMS).read_text().splitlines(), "frames": frames}, indent=1) + "\n")
    print(f"golden set: {len(frames)} frames ({int(picked.truth.notna().sum())} with a cup) in {FRAMES_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
