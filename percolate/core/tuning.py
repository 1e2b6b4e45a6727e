"""Every performance setting of the scoring stages, in one place, each with the measurement
that chose it.

Figures: 2026-12-03, the 2-core machine (24 GiB, no GPU), shipped models, 4 generated calls
of 60 s (640x360, a keyframe every second) sampled at 1 fps; CPU seconds, median of 3,
`python benchmarks/bench_stages.py --calls 4 --seconds 60 --repeats 3 --spark`.
docs/tuning.md has the whole table. The Spark session factory (`percolate.io.spark`) and the
model workers (`percolate.inference`) read these; nothing else sets them.
"""

from __future__ import annotations

# Rows per Arrow batch between the JVM and a Python worker. 1024 rather than 64: the
# prefilter transform in local[2] cost 2.85 against 3.18 CPU-ms per frame with the shuffle,
# 2.29 against 2.41 without (fewer round trips; one batch is ~37 MB of 36 KB JPEGs, well
# inside a worker's memory). A multiple of both forward batches below, so the frames of each
# forward pass (and with them the scores, bit for bit) do not depend on it.
ARROW_MAX_RECORDS_PER_BATCH = 1024

# Keep Python workers between tasks: a fresh worker costs ~1.5 CPU-s (interpreter 0.02,
# `import torch` 1.1, pandas + pyarrow 0.3, the prefilter's load 0.02) before its first frame.
# With reuse, a local[2] job ran 2 workers over 8 tasks, each model loaded once per worker.
PYTHON_WORKER_REUSE = True

# torch intra-op threads per Spark task: Spark already runs one task per core, so more
# threads only contend; the shipped models' batch forward is single-thread compute-bound.
TORCH_THREADS = 1

# Frames per forward pass, per role. Prefilter: 0.46-0.75 CPU-ms/frame at 16, 64 or 256 and
# 1.1-1.6 at 1; 64 keeps training's and calibration's batches. Heavy (120 crops, median of 7,
# twice): 4.4 CPU-ms/frame at 16 against 7.4 at 64, 4.5 at 32, 3.9-4.1 at 8 (the activations
# of 64 crops of 128x128 leave the cache); 16 stays within 1e-10 of 64's outputs (8: 1e-7).
PREFILTER_FORWARD_BATCH = 64
HEAVY_FORWARD_BATCH = 16
# (The batch figures above are for NCHW tensors. Since 2026-12-06 built-in models run
# channels-last, which halves the prefilter's CPU a frame: `models.predictor.CHANNELS_LAST`,
# kept beside the one inference path because `models` imports nothing from `percolate`.)

# Frames the heavy stage decodes and compares for reuse at a time (bounds a worker's memory;
# a multiple of HEAVY_FORWARD_BATCH).
HEAVY_CHUNK = 256


# Videos per sampling task (`percolate.transforms.sampling.manifest_frame`). A Spark task costs
# its Python worker and the driver about 0.1 CPU-s beyond its decoding, however small it is: one
# video per task spent 6-9 of the 50 CPU-s of the `make bench` day's sampling job on it (64
# calls, 2.15 video-hours, 1.06 GB, a keyframe a second; 2026-12-07). That job's own CPU-s and
# wall seconds by task count, one run each (two at 64), `benchmarks/cost/treeprof.py` around
# `jobs/sample_frames.py`: 64 tasks 50.7-51.5 / 30.2-30.7 s, 16: 44.4 / 26.8, 8: 45.2 / 28.7,
# 4: 41.6 / 26.3, 2: 43.5 / 27.5. So tasks are sized by stored bytes (what the manifest knows of
# the decode work before the run): `DECODE_TASK_BYTES` each (about an hour of such calls, ~12
# CPU-s of decoding: the overhead under 1%), at least `DECODE_MIN_WAVES` tasks per core so the
# last wave does not leave cores idle, videos packed largest first into the lightest task.
DECODE_TASK_BYTES = 512 << 20
DECODE_MIN_WAVES = 2


# JVM options of every Spark driver Percolate starts for one job or one session (the nightly
# and weekly jobs under spark-submit, `percolate query`, tests, the benchmark's variants): the
# C1 compiler only, and the serial collector. Such a driver lives seconds to minutes and mostly
# moves bytes between Python workers and Parquet; the C2 compiler's threads cost more CPU than
# its faster code gives back in that time. Process-tree CPU seconds per job, default -> these
# options, 2 runs each (2026-12-04, the 2-core machine; 12 calls of 100-140 s, 0.385
# video-hours, a keyframe every second: `percolate generate-day --date 2026-12-20 --calls 12
# --seed 5 --backgrounds holdout --min-seconds 100 --max-seconds 140`, then each job alone under
# benchmarks/cost/meter.py): sample_frames 28.9 -> 19.8, prefilter 25.0 -> 16.8, heavy
# 22.4 -> 15.0, publish 51.7 -> 29.7; on a 2-call day of 11 s, sample_frames 19.5 -> 13.3
# (C1 alone 13.6, serial GC alone 17.5). Wall time 2-6 s less per job. Long-lived JVMs keep
# the JVM's defaults: the Thrift server, and a cluster's executors (only the driver's options
# are set). docs/tuning.md.
# Every launcher adds the drivers' class archive to these where one has been built
# (percolate.io.jvm_archive: a nightly run's three drivers 44 against 70 CPU-s, docs/tuning.md).
DRIVER_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
DRIVER_MEMORY = "3g"  # a job's driver (local mode: the executor too); tests and tools use 2g


def submit_confs() -> dict[str, str]:
    """The `--conf` settings of every spark-submit of a Percolate job (DAGs, CLI, benchmark)."""
    return {"spark.driver.memory": DRIVER_MEMORY, "spark.ui.enabled": "false",
            "spark.driver.extraJavaOptions": DRIVER_JAVA_OPTIONS}


def spark_confs() -> dict[str, str]:
    """The Spark settings above, as session configuration."""
    return {
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_MAX_RECORDS_PER_BATCH),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.python.worker.reuse": "true" if PYTHON_WORKER_REUSE else "false",
    }
