"""Spark job: decode the day's stored videos and keep N frames per second
(`percolate.transforms.sampling`)."""

from __future__ import annotations

import sys
from dataclasses import replace

from jobs.common import Stopwatch, hold_lease, new_parser, optional_float
from percolate.core.layout import FRAMES, SAMPLE_FRAMES, VIDEOS
from percolate.core.metering import job_cpu_seconds
from percolate.core.settings import Settings
from percolate.io.manifest import read_manifest
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage
from percolate.io.store import open_store
from percolate.transforms.sampling import (CPU_STEPS, cpu_steps_accumulator, frames_of, manifest_frame, outcomes_of,
                                          sample_videos, sampling_figures)
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
    args = parser.parse_args(argv)
    settings = Settings.from_env()
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
    sampled = sample_videos(
        manifest_frame(spark, manifest), store_uri=settings.store_uri, endpoint_url=settings.s3_endpoint_url,
        fps=sampler.fps, max_side=sampler.max_side, jpeg_quality=sampler.jpeg_quality,
        limits=DecodeLimits(**sampler.decode_limits()), isolated=sampler.isolated, cpu_steps=cpu_steps,
    ).persist()
    frames_of(sampled).coalesce(max(1, min(len(manifest) // 8, 16))).write.mode("overwrite").parquet(
        stage.uri(args.output_stage, args.date, FRAMES))
    outcomes = outcomes_of(sampled)
    outcomes.coalesce(1).write.mode("overwrite").parquet(stage.uri(args.output_stage, args.date, VIDEOS))
    figures = sampling_figures(outcomes)
    sampled.unpersist()
    stage.write_metrics(args.output_stage, args.date, {
        "run_id": args.run_id, **figures, "sampler": sampler.provenance(figures["decode_modes"]),
        "cpu_s": job_cpu_seconds(), "wall_s": watch.seconds, "started_at": watch.started_at,
        # inside the decoders (video.limits.VideoInfo): demux+decode, yuv->rgb+resize, JPEG encode
        "decode_step_cpu_s": {step: round(v, 4) for step, v in zip(CPU_STEPS, cpu_steps.value)},
    })
    print(f"[percolate] sampled {figures['sampled_frames']} frames from {figures['videos_ok']}/{figures['videos']} "
          f"videos for {args.date} in {watch.seconds:.1f}s", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
