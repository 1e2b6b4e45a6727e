"""benchmarks/bench_stages.py: the predictor's variants measured side by side (no timings asserted)."""

import io
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def test_predictor_variants_agree_and_leave_the_switches_as_they_were(tmp_path):
    """NCHW, channels-last and folded give the same outputs within float rounding, each is
    timed, and the predictor's module-level switches are restored afterwards."""
    from PIL import Image

    import models.predictor as predictor_module
    from benchmarks.bench_stages import predictor_variants
    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.io.store import open_store

    registry = ModelRegistry(open_store(str(tmp_path)))
    ensure_production(registry)
    models = {role: registry.load(role) for role in ("prefilter", "heavy")}
    rng = np.random.default_rng(0)
    jpegs = []
    for _ in range(6):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())
    switches = predictor_module.CHANNELS_LAST, predictor_module.FOLD_BATCH_NORM

    out = predictor_variants(models, jpegs, np.full((len(jpegs), 2), 0.5), repeats=1)

    assert (predictor_module.CHANNELS_LAST, predictor_module.FOLD_BATCH_NORM) == switches
    for role in models:
        assert all(out[f"{role}_{name}_ms"] > 0 for name in ("nchw", "channels_last", "channels_last_folded"))
        assert out[f"{role}_largest_difference"] < 1e-5
