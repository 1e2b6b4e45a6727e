"""The prefilter's hand-over to the heavy stage: the survivors with their pixels
(`survivor_rows`, what the sampling job writes) are exactly the frames the old join of scores
and sampled frames gave;
models load once per Python worker, on one torch thread."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from percolate.core.tables import PREFILTER_SCORES, names

pytestmark = pytest.mark.spark


def _golden_support():
    """tests/golden/golden_support.py: the committed frames with cups, and their expected labels."""
    path = Path(__file__).resolve().parents[1] / "golden" / "golden_support.py"
    spec = importlib.util.spec_from_file_location("golden_support", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_survivor_rows_match_the_join_and_feed_the_heavy_model(spark, tmp_path):
    from models.registry import ModelRegistry
    from models.shipped import ensure_production
    from percolate.io.store import LocalStore
    from percolate.transforms.scoring import (classify_frames, in_stable_batches, mark_passed, score_frames,
                                              score_rows, survivor_rows, survivors)
    golden_support = _golden_support()

    store = LocalStore(tmp_path / "registry")
    registry = ModelRegistry(store)
    ensure_production(registry)
    pre, heavy = registry.resolve("prefilter", "production"), registry.resolve("heavy", "production")
    threshold = float(registry.spec("prefilter", pre)["threshold"])
    golden, expected = golden_support.load_golden()
    frames = spark.createDataFrame(golden.assign(user_id="u", decode_mode="keyframes")[
        ["call_id", "user_id", "frame_index", "ts_ms", "decode_mode", "jpeg"]]).repartition(3)
    frames = frames.withColumn("frame_index", frames["frame_index"].cast("int"))  # as the sampler writes it

    scored = mark_passed(score_frames(frames, registry_uri=store.uri, endpoint_url=None, version=pre,
                                      survivors_at=threshold), threshold).persist()
    scores = score_rows(scored)
    assert scores.columns == names(PREFILTER_SCORES)
    passed = scores.where("passed").count()
    assert 0 < passed < len(golden)
    new = survivor_rows(scored).toPandas().sort_values(["call_id", "frame_index"]).reset_index(drop=True)
    old = survivors(frames, scores).select(*new.columns).toPandas().sort_values(
        ["call_id", "frame_index"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(new, old)
    assert new["jpeg"].notna().all() and (new["prefilter_score"] >= threshold).all()

    out = classify_frames(in_stable_batches(survivor_rows(scored), 2), registry_uri=store.uri, endpoint_url=None,
                          version=heavy, reuse_tolerance=0.0).toPandas()
    want = {(r["call_id"], r["frame_index"]): r["label"] for r in expected["frames"]}
    assert len(out) == passed
    assert all(want[(r.call_id, r.frame_index)] == r.label for r in out.itertuples())
    scored.unpersist()

    uri = store.uri

    def probe(batches):  # nested: pickled by value for the workers
        import os

        import torch

        from percolate import inference

        for _ in batches:
            pass
        roles = [key[2] for key in inference._MODELS if key[0] == uri]
        yield pd.DataFrame({"pid": [os.getpid()], "threads": [torch.get_num_threads()],
                            "loads": [max([roles.count(r) for r in set(roles)] or [0])]})

    workers = frames.mapInPandas(probe, "pid long, threads long, loads long").toPandas()
    assert (workers["threads"] == 1).all()
    assert (workers["loads"] <= 1).all()  # each role's model loaded at most once per worker
