"""Synthetic 640x360 JPEG frames for the model tests: shapes drawn on noise."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 200, 60)}


def frame(rng: np.random.Generator, colour: str | None = None, shape: str = "rect",
          w: int = 640, h: int = 360) -> bytes:
    """Noise background, optionally one coloured rectangle or circle; JPEG bytes."""
    img = rng.integers(60, 180, (h, w, 3)).astype(np.uint8)
    if colour is not None:
        size = int(rng.integers(80, 150))
        y0, x0 = int(rng.integers(0, h - size)), int(rng.integers(0, w - size))
        if shape == "circle":
            yy, xx = np.mgrid[:size, :size]
            mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (size / 2) ** 2
            img[y0:y0 + size, x0:x0 + size][mask] = COLOURS[colour]
        else:
            img[y0:y0 + size, x0:x0 + int(size * 0.7)] = COLOURS[colour]
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def frames_df(n: int, classes: list[str], pos_frac: float = 0.5, seed: int = 0,
              frames_per_call: int = 10) -> pd.DataFrame:
    """A labelled frames DataFrame (jpeg, label, call_id, ts_ms, background)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = str(rng.choice(classes)) if rng.random() < pos_frac else None
        rows.append({"jpeg": frame(rng, label), "label": label,
                     "call_id": f"call{i // frames_per_call}", "ts_ms": (i % frames_per_call) * 1000,
                     "background": "noise"})
    return pd.DataFrame(rows)
