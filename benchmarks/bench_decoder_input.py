"""The prefilter on the decoder's frame against the prefilter on the sampled JPEG.

    PERCOLATE_HOME=... python -m benchmarks.bench_decoder_input --date 2026-11-22 [--calls 12] [--json]

For every keyframe of the first `calls` videos of a date's manifest (the nightly sampler's
keyframe path: 1 frame/s on 1 s-keyframe video), one process, one torch thread:

- the JPEG path the models were trained and calibrated on: the frame converted to RGB at
  its stored size (long side 640), JPEG-encoded at the sampler's quality, decoded as a 1/4
  draft to the prefilter's input (`models.preprocess`);
- the decoder's path of the nightly run: the frame scaled by swscale straight to the
  prefilter's input, with each of its filters (area is what `percolate.video.decode` uses).

Prints CPU ms per frame of each step, and for each filter how far the scores and decisions
move from the JPEG path's (the production prefilter of `PERCOLATE_REGISTRY`, its threshold).
Used for docs/tuning.md ("The prefilter on the decoder's frame").
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time

FILTERS = ("AREA", "BILINEAR", "BICUBIC", "FAST_BILINEAR")


def measure(date: str, calls: int) -> dict:
    import av
    import numpy as np
    import torch
    from av.video.reformatter import VideoReformatter
    from PIL import Image

    from models.preprocess import decode_jpeg, resize
    from models.registry import ModelRegistry
    from models.shipped import resolve
    from percolate.core.settings import Settings
    from percolate.io.manifest import read_manifest
    from percolate.io.store import open_store
    from percolate.video.probe import output_size

    torch.set_num_threads(1)
    settings = Settings.from_env()
    registry = ModelRegistry(open_store(settings.registry_uri, settings.s3_endpoint_url))
    version = resolve(registry, "prefilter", "production")
    model = registry.load("prefilter", version)
    width, height = model.input.width, model.input.height
    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    rows = read_manifest(store, date)[:calls]
    if not rows:
        raise SystemExit(f"no calls in the manifest of {date}")
    cpu = dict.fromkeys(["rgb_full", "jpeg_encode", "jpeg_draft_decode"] + [f"scale_{f.lower()}" for f in FILTERS],
                        0.0)
    jpeg_inputs, decoder_inputs = [], {f: [] for f in FILTERS}
    for row in rows:
        with store.local_copy(row["video_key"]) as path, av.open(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            full, scalers = VideoReformatter(), {f: VideoReformatter() for f in FILTERS}
            for frame in container.decode(stream):
                tw, th = output_size(frame.width, frame.height, stream.sample_aspect_ratio, settings.sampler.max_side)
                c0 = time.process_time()
                rgb = full.reformat(frame, width=tw, height=th, format="rgb24", interpolation="BILINEAR").to_ndarray()
                c1 = time.process_time()
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, format="JPEG", quality=settings.sampler.jpeg_quality)
                c2 = time.process_time()
                jpeg_inputs.append(resize(decode_jpeg(buf.getvalue(), (width, height)), model.input))
                c3 = time.process_time()
                cpu["rgb_full"] += c1 - c0
                cpu["jpeg_encode"] += c2 - c1
                cpu["jpeg_draft_decode"] += c3 - c2
                for name, scaler in scalers.items():
                    c0 = time.process_time()
                    decoder_inputs[name].append(scaler.reformat(frame, width=width, height=height, format="rgb24",
                                                                interpolation=name).to_ndarray())
                    cpu[f"scale_{name.lower()}"] += time.process_time() - c0
    n = len(jpeg_inputs)
    base = np.stack(jpeg_inputs)
    c0 = time.process_time()
    base_scores = model.locate_inputs(base, 64)[0]
    cpu["prefilter_forward"] = time.process_time() - c0
    threshold = float(model.spec["threshold"])
    filters = {}
    for name, inputs in decoder_inputs.items():
        x = np.stack(inputs)
        scores = model.locate_inputs(x, 64)[0]
        diff = np.abs(scores - base_scores)
        pixels = np.abs(x.astype(np.int16) - base.astype(np.int16))
        filters[name.lower()] = {
            "mean_abs_pixel_difference": round(float(pixels.mean()), 2),
            "mean_abs_score_difference": round(float(diff.mean()), 4),
            "max_abs_score_difference": round(float(diff.max()), 4),
            "passed": int((scores >= threshold).sum()),
            "decisions_changed": int(((scores >= threshold) != (base_scores >= threshold)).sum())}
    return {"date": date, "calls": len(rows), "frames": n, "prefilter": version, "threshold": threshold,
            "jpeg_path_passed": int((base_scores >= threshold).sum()),
            "cpu_ms_per_frame": {k: round(1000 * v / max(n, 1), 3) for k, v in cpu.items()},
            "filters": filters}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", required=True)
    parser.add_argument("--calls", type=int, default=12, help="the manifest's first N calls")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args(argv)
    result = measure(args.date, args.calls)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{result['frames']} frames of {result['calls']} calls on {result['date']}; prefilter "
          f"{result['prefilter']} at {result['threshold']:.4f}: {result['jpeg_path_passed']} pass on the JPEG path")
    for step, ms in result["cpu_ms_per_frame"].items():
        print(f"  {step:<22}{ms:8.3f} CPU-ms a frame")
    for name, f in result["filters"].items():
        print(f"  {name:<14} score |diff| mean {f['mean_abs_score_difference']:.4f} max "
              f"{f['max_abs_score_difference']:.4f}; {f['passed']} pass, {f['decisions_changed']} decisions changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
