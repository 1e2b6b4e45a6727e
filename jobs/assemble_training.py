"""Spark job: the labelled frames a weekly retrain learns from (`percolate.transforms.training_set`).

Reads the labels known at --date (point in time) about the last --weeks weeks, turns them into
frame labels (frame labels as they are, user-day labels onto the frames that supported the
detection), leaves out frames whose labels disagree, and joins each frame's JPEG from the
stage data of the run that published its day and what the model said of it. Writes the rows
to the stage (stage `training`, run --run-id) and the counts beside them.
"""

from __future__ import annotations

import sys

from pyspark.sql import functions as F

from jobs.common import Stopwatch, new_parser
from percolate.core.layout import FRAMES, SAMPLE_FRAMES, TRAINING
from percolate.core.metering import job_cpu_seconds
from percolate.core.settings import Settings
from percolate.io.spark import get_spark
from percolate.io.stage import open_stage
from percolate.io.warehouse import open_warehouse
from percolate.transforms.training_set import (TRAINING_COLUMNS, frame_labels, point_in_time, settle,
                                               unmatched_user_days, with_frames)


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Assemble the labelled frames of the last weeks for retraining.")
    parser.add_argument("--weeks", type=int, default=4, help="weeks of labels (default 4)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    watch = Stopwatch()
    spark = get_spark(f"percolate-assemble-training-{args.date}", settings)
    warehouse = open_warehouse(spark, settings)
    warehouse.ensure_tables()
    labels = point_in_time(spark.table(warehouse.table("labels")), args.date, args.weeks).cache()
    days = sorted(r.day for r in labels.select("day").distinct().collect())
    runs = {r.dt: r.run_id for r in spark.table(warehouse.table("pipeline_runs"))
            .where(F.col("dt").isin(days)).select("dt", "run_id").collect()} if days else {}
    predictions = (spark.table(warehouse.table("frame_predictions")).where(F.col("dt").isin(list(runs)))
                   .select("dt", "call_id", "user_id", "frame_index", "label", "score", "aggregation",
                           "heavy_threshold").cache())
    agreed, conflicts = settle(frame_labels(labels, predictions))
    frames = None
    for day, run_id in sorted(runs.items()):
        part = (spark.read.parquet(open_stage(settings, run_id).uri(SAMPLE_FRAMES, day, FRAMES))
                .select(F.lit(day).alias("day"), "call_id", "frame_index", "ts_ms", "jpeg"))
        frames = part if frames is None else frames.unionByName(part)
    stage = open_stage(settings, args.run_id)
    out = stage.uri(TRAINING, args.date)
    columns = [*TRAINING_COLUMNS, "ts_ms", "jpeg", "champion_label", "champion_score", "champion_threshold"]
    if frames is None:
        rows = spark.createDataFrame([], "day string, call_id string, user_id string, frame_index int, label string, "
                                         "source string, known_at timestamp, ts_ms bigint, jpeg binary, "
                                         "champion_label string, champion_score double, champion_threshold double")
    else:
        rows = with_frames(agreed, frames, predictions).select(*columns)
    rows.coalesce(1).write.mode("overwrite").parquet(out)
    written = spark.read.parquet(out)
    by_source = {r.source: r.n for r in labels.groupBy("source").agg(F.count("*").alias("n")).collect()}
    metrics = {
        "run_id": args.run_id, "as_of": args.date, "weeks": args.weeks, "days": days,
        "labels": sum(by_source.values()), "labels_by_source": by_source,
        "frames": written.count(), "frames_by_source": {r.source: r.n for r in written.groupBy("source").agg(
            F.count("*").alias("n")).collect()},
        "conflicting_frames": conflicts.count(),
        "unmatched_user_day_labels": unmatched_user_days(labels, predictions).count(),
        "days_without_published_run": sorted(set(days) - set(runs)),
        "cpu_s": job_cpu_seconds(), "wall_s": watch.seconds, "started_at": watch.started_at,
    }
    stage.write_metrics(TRAINING, args.date, metrics)
    print(f"[percolate] assembled {metrics['frames']} labelled frames from {metrics['labels']} labels of "
          f"{len(days)} days ({metrics['conflicting_frames']} frames left out: their labels disagree)", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
