"""Spark job: decode the day's stored videos and keep N frames per second
(`percolate.transforms.sampling`); with `--prefilter-version` (the nightly run), the decoder
also scores every frame with the prefilter and JPEG-encodes only the survivors and the audit's
share of the rest (`--audit-keep-rate`), and the job writes the prefilter stage: every frame's
score, and the survivors with their JPEGs for the heavy job (docs/cost.md)."""

from __future__ import annotations

import sys
from dataclasses import replace

from jobs.common import Stopwatch, hold_lease, model_spec, new_parser, optional_float

from percolate.budget import read_plan
from percolate.core.layout import FRAMES, PREFILTER, SAMPLE_FRAMES, SURVIVORS, VIDEOS
from percolate.core.metering import job_cpu_seconds
from percolate.core.settings import Settings
from percolate.io.manifest import read_manifest
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage
from percolate.io.store import open_store
from percolate.transforms.sampling import (CPU_STEPS, PrefilterStep, audit_keep_rate, cpu_steps_accumulator,
                                          frames_of, manifest_frame, outcomes_of, sample_videos, sampling_figures,
                                          scored_frames, scoring_figures)
from percolate.transforms.scoring import mark_passed, score_rows, survivor_rows
from percolate.video.limits import DecodeLimits


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Sample frames from the day's stored videos.")
    parser.add_argument("--fps", type=optional_float, default=None, help="frames per second to keep")
    parser.add_argument("--output-stage", default=SAMPLE_FRAMES, help="stage to write (training uses its own)")
    parser.add_argument("--time-limit-s", type=optional_float, default=None,
                        help="CPU-seconds limit per video (default PERCOLATE_DECODE_TIME_LIMIT_S or 300)")
    parser.add_argument("--memory-limit-mb", type=int, default=None,
                        help="memory one video's decode may add (default PERCOLATE_DECODE_MEMORY_MB or 2048)")
    parser.add_argument("--max-pixels", type=int, default=None, help="largest frame, in pixels")
    parser.add_argument("--max-duration-s", type=float, default=None, help="longest video, in seconds")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="most sampled frames per video, more is too_many_frames (default: the longest "
                             "video at --fps)")
    parser.add_argument("--in-process", action="store_true",
                        help="decode in the Spark worker itself: no hard time limit, no memory cap")
    parser.add_argument("--prefilter-version", default=None,
                        help="score every frame with this prefilter version as it is sampled and write the "
                             "prefilter stage too (the nightly run; training days leave it out)")
    parser.add_argument("--audit-keep-rate", type=optional_float, default=None,
                        help="with --prefilter-version: the share of rejected frames whose JPEG is kept for the "
                             "audit (default: from the run's budget estimate and PERCOLATE_AUDIT_REJECTED; 1 keeps "
                             "every frame's JPEG)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.prefilter_version and args.output_stage != SAMPLE_FRAMES:
        parser.error("--prefilter-version writes the nightly prefilter stage: only with the default --output-stage")
    if args.output_stage == SAMPLE_FRAMES:  # a nightly date (training days are not published)
        hold_lease(settings, args.date, args.run_id)
    sampler = replace(settings.sampler, **{k: v for k, v in (
        ("fps", args.fps), ("time_limit_s", args.time_limit_s), ("memory_limit_mb", args.memory_limit_mb),
        ("max_pixels", args.max_pixels), ("max_duration_s", args.max_duration_s),
        ("max_frames", args.max_frames)) if v is not None})
    if args.in_process:
        sampler = replace(sampler, isolated=False)
    watch = Stopwatch()
    stage = open_stage(settings, args.run_id)
    spark = get_spark(f"percolate-sample-frames-{args.date}", settings)
    manifest = read_manifest(open_store(settings.store_uri, settings.s3_endpoint_url), args.date)
    cpu_steps = cpu_steps_accumulator(spark)
    prefilter = threshold = keep_rate = None
    if args.prefilter_version:
        threshold = float(model_spec(settings, "prefilter", args.prefilter_version)["threshold"])
        keep_rate = args.audit_keep_rate
        if keep_rate is None:
            expected = read_plan(stage, args.date).get("estimate", {}).get("sampled_frames")
            keep_rate = audit_keep_rate(settings.audit_rejected, expected)
        if not 0.0 <= keep_rate <= 1.0:
            parser.error(f"--audit-keep-rate must lie in [0, 1], not {keep_rate}")
        prefilter = PrefilterStep(settings.registry_uri, settings.s3_endpoint_url, args.prefilter_version,
                                  threshold, args.date, keep_rate, cpu=spark.sparkContext.accumulator(0.0))
    sampled = sample_videos(
        manifest_frame(spark, manifest), store_uri=settings.store_uri, endpoint_url=settings.s3_endpoint_url,
        fps=sampler.fps, max_side=sampler.max_side, jpeg_quality=sampler.jpeg_quality,
        limits=DecodeLimits(**sampler.decode_limits()), isolated=sampler.isolated, cpu_steps=cpu_steps,
        prefilter=prefilter,
    ).persist()
    frames_of(sampled).coalesce(max(1, min(len(manifest) // 8, 16))).write.mode("overwrite").parquet(
        stage.uri(args.output_stage, args.date, FRAMES))
    frames_kept = spark.read.parquet(stage.uri(args.output_stage, args.date, FRAMES)).count()
    outcomes = outcomes_of(sampled)
    outcomes.coalesce(1).write.mode("overwrite").parquet(stage.uri(args.output_stage, args.date, VIDEOS))
    figures = sampling_figures(outcomes)
    scoring = None
    if prefilter is not None:
        scored = mark_passed(scored_frames(sampled), threshold)
        score_rows(scored).coalesce(1).write.mode("overwrite").parquet(stage.uri(PREFILTER, args.date))
        survivor_rows(scored).coalesce(1).write.mode("overwrite").parquet(stage.uri(SURVIVORS, args.date))
        scoring = scoring_figures(scored)
    sampled.unpersist()
    cpu_s = job_cpu_seconds()
    prefilter_cpu_s = round(prefilter.cpu.value, 3) if prefilter is not None else 0.0
    stage.write_metrics(args.output_stage, args.date, {
        "run_id": args.run_id, **figures, "frames_kept": frames_kept, "audit_keep_rate": keep_rate,
        "sampler": dict(sampler.provenance(figures["decode_modes"]), audit_keep_rate=keep_rate),
        # the job's CPU less what scoring took, which is the prefilter stage's (below)
        "cpu_s": round(cpu_s - prefilter_cpu_s, 3), "wall_s": watch.seconds, "started_at": watch.started_at,
        # inside the decoders (video.limits.VideoInfo): demux+decode, yuv->rgb+resize, JPEG encode
        "decode_step_cpu_s": {step: round(v, 4) for step, v in zip(CPU_STEPS, cpu_steps.value)},
    })
    if prefilter is not None:
        # written last: a run whose prefilter stage is there has its sampling stage too
        stage.write_metrics(PREFILTER, args.date, {
            "run_id": args.run_id, "model_version": args.prefilter_version, "threshold": threshold,
            **scoring, "cpu_s": prefilter_cpu_s, "fused": True, "audit_keep_rate": keep_rate,
            "wall_s": watch.seconds, "started_at": watch.started_at,
        })
        print(f"[percolate] prefilter {args.prefilter_version}: {scoring['frames_passed']}/{scoring['frames_in']} "
              f"frames passed (threshold {threshold:.4f})", flush=True)
    print(f"[percolate] sampled {figures['sampled_frames']} frames ({frames_kept} JPEGs kept) from "
          f"{figures['videos_ok']}/{figures['videos']} videos for {args.date} in {watch.seconds:.1f}s", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
