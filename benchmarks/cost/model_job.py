"""Spark job (spark-submit) of the benchmark's two model-on-everything variants.

naive (`--fps 0`): every frame decoded and classified by the production heavy model;
sampled only (`--fps 1`): the sampler's rule (benchmarks.cost.decode_limit), then the heavy
model on every sampled frame. Tasks of about the same bytes, as the nightly sampler's
(`percolate.transforms.sampling.packed_frame`), the models loaded once per Python worker
(`percolate.inference.load_model`, which also pins torch to one thread per task), frames
passed as arrays (no JPEG hand-over): the strongest honest version of the obvious approach.

The heavy model crops around a location (its spec's `input.crop`); it takes it from the
prefilter's map, as in the pipeline, but every frame goes to the heavy model whatever the
prefilter scores. User-days come from the pipeline's own rule
(`percolate.transforms.publishing.build_user_brand_daily`).

    spark-submit benchmarks/cost/model_job.py --videos videos.json --fps 1 --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

CHUNK = 64  # frames per forward pass (models.predictor.BATCH)
SCHEMA = "call_id string, user_id string, frame_index long, ts_ms long, label string, score double"


def classify_videos(batches, registry_uri: str, endpoint_url: str | None, versions: tuple[str, str],
                    fps: float | None):
    """mapInPandas: rows of (call_id, user_id, path) -> one row per kept frame with the heavy
    model's best brand and its probability."""
    from benchmarks.cost.decode_limit import frames
    from models.preprocess import crop_square, resize
    from percolate.inference import load_model

    prefilter = load_model(registry_uri, endpoint_url, "prefilter", versions[0])
    heavy = load_model(registry_uri, endpoint_url, "heavy", versions[1])
    names = np.asarray(heavy.class_names, dtype=object)

    def flush(call_id, user_id, keys, stamps, images) -> pd.DataFrame:
        pf = np.stack([resize(img, prefilter.input) for img in images])
        _, centers, _ = prefilter.locate_inputs(pf)
        crop = heavy.input.crop
        hv = np.stack([resize(crop_square(img, c, crop) if crop else img, heavy.input)
                       for img, c in zip(images, centers)])
        probs = heavy.predict_inputs(hv)
        best = probs[:, 1:].argmax(axis=1)
        return pd.DataFrame({"call_id": call_id, "user_id": user_id, "frame_index": keys, "ts_ms": stamps,
                             "label": names[best], "score": probs[np.arange(len(best)), best + 1]})

    for batch in batches:
        for row in batch.itertuples():
            keys, stamps, images = [], [], []
            for key, ts_ms, rgb in frames(row.path, fps, {}):
                keys.append(key), stamps.append(ts_ms), images.append(rgb)
                if len(images) == CHUNK:
                    yield flush(row.call_id, row.user_id, keys, stamps, images)
                    keys, stamps, images = [], [], []
            if images:
                yield flush(row.call_id, row.user_id, keys, stamps, images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", required=True, help="JSON list of {call_id, user_id, path}")
    parser.add_argument("--fps", type=float, required=True, help="frames kept per second; 0: every frame")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from models.shipped import resolve
    from percolate.core.settings import Settings
    from percolate.core.tables import PROVENANCE, names
    from percolate.io.registry import open_registry
    from percolate.io.spark import get_spark
    from percolate.transforms.publishing import build_user_brand_daily, with_provenance
    from percolate.transforms.sampling import packed_frame

    started = time.monotonic()
    settings = Settings.from_env()
    registry = open_registry(settings)
    versions = (resolve(registry, "prefilter", "production"), resolve(registry, "heavy", "production"))
    heavy_spec = registry.spec("heavy", versions[1])
    rule = heavy_spec["aggregation"]
    videos = json.loads(open(args.videos).read())
    spark = get_spark("percolate-bench-models", settings)
    # tasks of about the same bytes, as the nightly sampler's (percolate.core.tuning.DECODE_TASK_BYTES)
    rows = [(v["call_id"], v["user_id"], v["path"]) for v in videos]
    df = packed_frame(spark, rows, StructType.fromDDL("call_id string, user_id string, path string"),
                      [os.path.getsize(v["path"]) for v in videos])
    fps = args.fps or None
    uri, endpoint = settings.registry_uri, settings.s3_endpoint_url
    predictions = df.mapInPandas(lambda it: classify_videos(it, uri, endpoint, versions, fps), SCHEMA).cache()
    counts = predictions.agg(F.count("*").alias("frames")).first()
    daily = build_user_brand_daily(with_provenance(predictions, {k: None for k in names(PROVENANCE)}),
                                   int(rule["min_frames"]), float(rule["min_score"]))
    confirmed = [(r["user_id"], r["brand"]) for r in daily.where("confirmed").collect()]
    from percolate.core.metering import job_cpu_seconds

    result = {"job_cpu_s": job_cpu_seconds(), "fps": args.fps, "videos": len(videos), "frames": int(counts["frames"]),
              "heavy_calls": int(counts["frames"]), "heavy_flops_per_frame": heavy_spec.get("flops_per_frame"),
              "versions": versions, "confirmed": confirmed, "wall_s": round(time.monotonic() - started, 2)}
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
