"""The fused floor: the whole cascade in the decoding process, and nothing else.

docs/cost.md ("What 0.7 of the decode limit would take") named the design that could bring
Percolate to 0.7 of the decode limit, built since 2026-12-07: the prefilter runs where the
frame is decoded, and a JPEG is made only for the frames it passes and the audit's draws of the
others. This measures that design's floor on the benchmark's files, with the heavy model in the same process too and no
Spark, no decode child, no hand-over: one process per core, the decode limit's rule
(`benchmarks.cost.decode_limit.frames`), then per kept frame

1. one cached swscale call from the decoder's YUV straight to the prefilter's input size (no
   RGB frame at the stored size, no JPEG);
2. the production prefilter (`models.predictor.Predictor.locate_inputs`, batches of
   `percolate.core.tuning.PREFILTER_FORWARD_BATCH`, one torch thread);
3. for a frame at or over its threshold, or drawn into the audit (`audit_share`, a hash of file
   and bucket): RGB at the stored size and a JPEG at the sampler's quality, as the heavy stage
   would need;
4. for a frame that passed, the production heavy model on its input made from that RGB frame
   (cropped around the prefilter's peak when the model crops; no reuse of unchanged inputs).

With `--confined`, each file runs in a child forked for it and confined as the sampler's decode
child is (`percolate.video.isolation`'s memory limits, then `percolate.video.sandbox.confine`),
with both models loaded and warmed in the parent: whether the cascade runs inside the sandbox at
all, and what the fork, the confinement and the copy-on-write faults of a process holding torch
and two models add (`cpu_s` is then the child's whole CPU from `wait4` plus the parent's for the
fork and the pipe; the result comes back as JSON).

Publishing, validation and the audit's labels are not in it. Its prefilter inputs are made as
the sampler makes them since 2026-12-07 (swscale's area filter; before, the pipeline scored a
JPEG decoded at 1/4 scale): the benchmark compares its pass decisions and scores with the
nightly run's on the same frames.

`python -m benchmarks.cost.fused_floor OUT.json --registry URI --version V --heavy-version H
[--audit-share P] [--confined] FILE...`
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np

_STATE: dict = {}


def _load(registry_uri: str, version: str, heavy_version: str, fps: float, jpeg_quality: int,
          audit_share: float) -> None:
    """Each worker process: the two models, once."""
    from models.registry import ModelRegistry
    from percolate.inference import pin_torch_threads
    from percolate.io.store import open_store

    # what `fused_file` imports, imported here: a confined child can open no file but its video
    for module in ("av.video.reformatter", "benchmarks.cost.decode_limit", "models.preprocess",
                   "percolate.core.tuning"):
        importlib.import_module(module)
    from PIL import Image

    Image.preinit()  # the JPEG plugin
    pin_torch_threads(1)
    registry = ModelRegistry(open_store(registry_uri))
    model = registry.load("prefilter", version)
    heavy = registry.load("heavy", heavy_version)
    # one forward pass each before any file: what torch loads on first use is loaded here, before
    # a confined child could no longer open it
    model.locate_inputs(np.zeros((1, model.input.height, model.input.width, 3), np.uint8), 1)
    heavy.predict_inputs(np.zeros((1, heavy.input.height, heavy.input.width, 3), np.uint8), 1)
    _STATE.update(model=model, heavy=heavy, threshold=float(model.spec["threshold"]),
                  fps=fps, quality=jpeg_quality, audit_share=audit_share)


def drawn(name: str, bucket: int, share: float) -> bool:
    """A frame's audit draw: the same frames on every run."""
    h = int.from_bytes(hashlib.blake2b(f"{name}/{bucket}".encode(), digest_size=8).digest(), "big")
    return h < share * 2 ** 64


def fused_file(path: str) -> dict:
    """One file: frames, passed, audited, CPU seconds by step, each kept frame's bucket and score."""
    from av.video.reformatter import VideoReformatter
    from PIL import Image

    from benchmarks.cost.decode_limit import frames
    from models.preprocess import crop_square, resize
    from percolate.core.tuning import HEAVY_FORWARD_BATCH, PREFILTER_FORWARD_BATCH

    model, heavy, threshold = _STATE["model"], _STATE["heavy"], _STATE["threshold"]
    spec, name = model.input, os.path.basename(path)
    small, full = VideoReformatter(), VideoReformatter()
    steps = dict.fromkeys(("decode", "scale", "prefilter", "jpeg", "heavy"), 0.0)
    counts: dict = {}
    buckets: list[int] = []
    scores: list[float] = []
    kept = {"passed": 0, "audited": 0}
    pending: list = []  # (bucket, decoded frame, prefilter input)

    def score() -> None:
        t = time.process_time()
        s, centers, _ = model.locate_inputs(np.stack([x for _, _, x in pending]), PREFILTER_FORWARD_BATCH)
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        steps["prefilter"] += time.process_time() - t
        t = time.process_time()
        heavy_inputs = []
        for (bucket, frame, _), p, center in zip(pending, s, centers):
            passed = p >= threshold
            if passed or drawn(name, bucket, _STATE["audit_share"]):
                kept["passed" if passed else "audited"] += 1
                rgb = full.reformat(frame, format="rgb24", interpolation="BILINEAR").to_ndarray()
                Image.fromarray(rgb).save(io.BytesIO(), "JPEG", quality=_STATE["quality"])
                if passed:
                    crop = crop_square(rgb, center, heavy.input.crop) if heavy.input.crop else rgb
                    heavy_inputs.append(resize(crop, heavy.input))
        steps["jpeg"] += time.process_time() - t
        if heavy_inputs:
            t = time.process_time()
            heavy.predict_inputs(np.stack(heavy_inputs), HEAVY_FORWARD_BATCH)
            steps["heavy"] += time.process_time() - t
        buckets.extend(b for b, _, _ in pending)
        scores.extend(s.tolist())
        pending.clear()

    cpu0 = t = time.process_time()
    for bucket, _, frame in frames(path, _STATE["fps"], counts, convert=lambda f: f):
        now = time.process_time()
        steps["decode"] += now - t
        x = small.reformat(frame, width=spec.width, height=spec.height, format="rgb24",
                           interpolation="AREA").to_ndarray()  # as the sampler (percolate.video.decode)
        pending.append((bucket, frame, x))
        steps["scale"] += time.process_time() - now
        if len(pending) >= PREFILTER_FORWARD_BATCH:
            score()
        t = time.process_time()
    steps["decode"] += time.process_time() - t
    if pending:
        score()
    return dict(counts, **kept, file=name, cpu_s=round(time.process_time() - cpu0, 3),
                steps={k: round(v, 3) for k, v in steps.items()}, buckets=buckets,
                scores=[round(v, 6) for v in scores])


def confined_file(path: str) -> dict:
    """`fused_file` in a child forked for this file and confined as the sampler's decode child
    is; its result, with the child's CPU (`wait4`) and the parent's for the fork and the pipe."""
    from percolate.video.isolation import _apply_limits
    from percolate.video.limits import DecodeLimits
    from percolate.video.sandbox import confine

    cpu0 = time.process_time()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read_fd)
            _apply_limits(DecodeLimits())
            confine(path, write_fd)
            out = json.dumps(fused_file(path)).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
            out, code = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:2000]}).encode(), 1
        try:
            view = memoryview(out)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    _, status, usage = os.wait4(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"error": "no result"}')
    if "error" in result or status != 0:
        raise RuntimeError(f"the confined child failed on {path} (status {status}): {result.get('error')}")
    child_cpu = usage.ru_utime + usage.ru_stime
    parent_cpu = time.process_time() - cpu0
    return dict(result, cpu_s=round(child_cpu + parent_cpu, 3), child_cpu_s=round(child_cpu, 3),
                parent_cpu_s=round(parent_cpu, 3), confined=True)


def run(paths: list[str], registry_uri: str, versions: tuple[str, str], fps: float, jpeg_quality: int,
        audit_share: float, workers: int, confined: bool = False) -> list[dict]:
    """Every file through `fused_file` (`confined_file` if `confined`), longest first, on
    `workers` processes; `versions`: the prefilter's and the heavy model's."""
    order = sorted(paths, key=lambda p: -os.path.getsize(p))
    with mp.get_context("fork").Pool(workers, _load, (registry_uri, *versions, fps, jpeg_quality,
                                                      audit_share)) as pool:
        return list(pool.imap_unordered(confined_file if confined else fused_file, order))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--registry", required=True, help="the model registry's URI")
    parser.add_argument("--version", required=True, help="the prefilter's version")
    parser.add_argument("--heavy-version", required=True, help="the heavy model's version")
    parser.add_argument("--audit-share", type=float, default=0.0, help="share of rejected frames kept as JPEGs")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--confined", action="store_true",
                        help="each file in a forked child confined as the sampler's decode child is")
    args = parser.parse_args(argv)
    fps = float(os.environ.get("PERCOLATE_SAMPLE_FPS", "1"))
    started = time.monotonic()
    files = run(args.files, args.registry, (args.version, args.heavy_version), fps, args.jpeg_quality,
                args.audit_share, os.cpu_count() or 1, args.confined)
    with open(args.out, "w") as fh:
        json.dump({"files": files, "wall_s": round(time.monotonic() - started, 2), "fps": fps,
                   "workers": os.cpu_count(), "audit_share": args.audit_share, "confined": args.confined}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
