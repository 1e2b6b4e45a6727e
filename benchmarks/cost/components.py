"""Micro-measurements of the pipeline's components on the benchmark's own files, one core.

Each step adds one thing to the previous (process CPU seconds, this process only):
demux only; + decode (the sampler's rule); + conversion to RGB at the stored size and the
resize to the sampler's `max_side`; + JPEG encode at its quality. Apart: decode + the
decoder's scaling straight to the prefilter's input (what the sampler does for every frame,
`percolate.video.decode`). Then, on the JPEGs made: Parquet write + read of the frames, JPEG
decode to each model's input (`models.preprocess.decode_batch`), and each model's forward pass
(`models.predictor.Predictor`), per frame. Rates are per video-hour (decode steps) or per
frame (the rest); `attribute` turns them into where a run's CPU goes.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from fractions import Fraction

import numpy as np


def _cpu(fn) -> tuple[float, object]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def _demux(path: str) -> int:
    import av

    with av.open(path) as container:
        return sum(1 for _ in container.demux(container.streams.video[0]))


def _decode(path: str, fps: float, convert, max_side: int) -> list:
    from benchmarks.cost import decode_limit

    kept = []
    if convert is None:  # decode only: the rule's frames, never converted
        import av

        rate = Fraction(str(fps))
        keys = decode_limit.keyframes_serve(path, rate)
        with av.open(path) as container:
            stream = container.streams.video[0]
            if keys:
                stream.codec_context.skip_frame = "NONKEY"
            start, tb, seen = stream.start_time or 0, stream.time_base, set()
            for frame in container.decode(stream):
                b = decode_limit._bucket(frame.pts, start, tb, rate)
                if b not in seen:
                    seen.add(b)
                    kept.append(None)
        return kept
    for _, _, rgb in decode_limit.frames(path, fps, {}):
        kept.append(convert(rgb, max_side))
    return kept


def _decode_to_input(path: str, fps: float, width: int, height: int) -> list:
    """The rule's frames scaled by the decoder straight to a model's input, as the sampler does."""
    from av.video.reformatter import VideoReformatter

    from benchmarks.cost import decode_limit

    scaler = VideoReformatter()
    return [x for _, _, x in decode_limit.frames(path, fps, {}, convert=lambda frame: scaler.reformat(
        frame, width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray())]


def _to_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    return np.asarray(Image.fromarray(rgb).resize((round(w * scale), round(h * scale)), Image.BILINEAR))


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def measure(paths: list[str], video_s: float, fps: float, max_side: int, jpeg_quality: int,
            prefilter, heavy) -> dict:
    """CPU seconds per video-hour (decode steps) and per frame (the rest) on `paths`."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    per_vh = 3600.0 / video_s
    demux, _ = _cpu(lambda: [_demux(p) for p in paths])
    decode, _ = _cpu(lambda: [_decode(p, fps, None, max_side) for p in paths])
    convert, rgbs = _cpu(lambda: [f for p in paths for f in _decode(p, fps, _to_side, max_side)])
    jpeg_s, jpegs = _cpu(lambda: [_jpeg(f, jpeg_quality) for f in rgbs])
    n = max(len(jpegs), 1)
    scaled, _ = _cpu(lambda: [_decode_to_input(p, fps, prefilter.input.width, prefilter.input.height)
                              for p in paths])
    table = pa.Table.from_pandas(pd.DataFrame({"frame_index": np.arange(len(jpegs)), "jpeg": jpegs}))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frames.parquet")
        parquet_s, _ = _cpu(lambda: (pq.write_table(table, path), pq.read_table(path)))
    pf_dec, pf_in = _cpu(lambda: prefilter.decode_inputs(jpegs))
    pf_fwd, located = _cpu(lambda: prefilter.locate_inputs(pf_in))
    hv_dec, hv_in = _cpu(lambda: heavy.decode_inputs(jpegs, located[1]))
    hv_fwd, _ = _cpu(lambda: heavy.predict_inputs(hv_in))
    return {
        "files": len(paths), "video_s": round(video_s, 1), "frames": len(jpegs),
        "per_video_hour": {"demux": demux * per_vh, "decode": max(decode - demux, 0.0) * per_vh,
                           "convert_resize": max(convert - decode, 0.0) * per_vh},
        "per_frame": {"scale_to_prefilter_input": max(scaled - decode, 0.0) / n,
                      "jpeg_encode": jpeg_s / n, "parquet_write_read": parquet_s / n,
                      "jpeg_decode_prefilter": pf_dec / n, "prefilter_forward": pf_fwd / n,
                      "jpeg_decode_heavy": hv_dec / n, "heavy_forward": hv_fwd / n},
    }


def attribute(marginal: dict[str, float], funnel: dict[str, float], parts: dict) -> dict[str, float]:
    """Where the marginal CPU per video-hour of each stage goes: the components' measured
    cost times the stage's work (frames per video-hour, from the run), the rest of the
    stage's CPU as Spark/Python worker overhead (never below zero: a component measured
    dearer in isolation than its stage's whole CPU is capped to it)."""
    pv, pf = parts["per_video_hour"], parts["per_frame"]
    sampled, runs = funnel["sampled_per_vh"], funnel["heavy_runs_per_vh"]
    passed, kept = funnel["passed_per_vh"], funnel.get("kept_per_vh", sampled)
    # the prefilter in the decoder: every frame scaled to its input; full-size RGB, a JPEG and
    # Parquet for the kept frames only (survivors and the audit's keep rate); no JPEG decoded
    convert = pv["convert_resize"] * kept / max(sampled, 1e-9) + pf["scale_to_prefilter_input"] * sampled
    plan = {
        "sample_frames": {"demux + decode": pv["demux"] + pv["decode"], "colour conversion + resize": convert,
                          "JPEG encode": pf["jpeg_encode"] * kept, "Parquet": pf["parquet_write_read"] * kept / 2},
        "prefilter": {"prefilter model": pf["prefilter_forward"] * sampled},
        "heavy": {"JPEG decode": pf["jpeg_decode_heavy"] * passed, "heavy model": pf["heavy_forward"] * runs},
    }
    out: dict[str, float] = {}
    for stage, parts_of in plan.items():
        left = float(marginal.get(stage, 0.0))
        for name, value in parts_of.items():
            take = min(max(value, 0.0), max(left, 0.0))
            out[name] = out.get(name, 0.0) + take
            left -= take
        out["Spark/Python worker overhead"] = out.get("Spark/Python worker overhead", 0.0) + max(left, 0.0)
    out["publish + validation"] = float(marginal.get("publish", 0.0))
    # the run's process tree less the jobs' own metering: Airflow's own CPU is flat with the day
    # (21.8 and 22.0 CPU-s on the tiny and the benchmark day, 2026-12-05), so what grows here is
    # the jobs' CPU outside their metering, and run-to-run noise (docs/cost.md, "Where the CPU goes";
    # before 2026-12-06 also the meter's double count of orphaned Python workers, benchmarks/cost/meter.py)
    out["outside the jobs' own metering"] = float(marginal.get("airflow", 0.0))
    return {k: round(v, 2) for k, v in out.items()}
