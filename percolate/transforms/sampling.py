"""Manifest rows -> sampled frames and one outcome row per video.

Decoding happens inside the executors, in tasks of about the same stored bytes
(`manifest_frame`): a task costs ~0.1 CPU-s of Spark machinery whatever its size, so one
video per task cost a 64-call day 6-9 CPU-s (`percolate.core.tuning.DECODE_TASK_BYTES`).
Each video is decoded in a child process forked for it, with a memory cap and a hard time
limit (`percolate.video.isolation`), so a hung or runaway decoder costs one video, not the
executor. An unusable video becomes an outcome row with a reason code.

With a `PrefilterStep` (the nightly run) the decoder itself scores each sampled frame with the
prefilter, on the frame scaled straight to the model's input (`percolate.video.decode`,
"Scoring in the decoder"), and JPEG-encodes only the frames the night needs again: those that
pass the threshold, for the heavy model, and a random share of the others fixed before the day
(`keep_rate`), from which the audit draws the rejected frames people label
(`percolate.transforms.audit`). Every frame still gets its score row; a frame not kept has no
JPEG. No second Spark job, no JPEG encoded, written or decoded again for the ~95% of frames the
prefilter rejects (docs/cost.md, docs/tuning.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, SparkSession, functions as F
from pyspark.sql.types import StructType

from percolate.core import tuning
from percolate.core.tables import MANIFEST, SAMPLED_FRAMES, SCORED_ROWS, VIDEO_OUTCOMES, names, spark_schema
from percolate.inference import prefilter_arrays
from percolate.transforms.audit import draw_value

if TYPE_CHECKING:
    from percolate.video.limits import DecodeLimits


CPU_STEPS = ("decode", "convert", "encode")  # the decoders' CPU split (percolate.video.limits.VideoInfo)


class _CpuSteps(AccumulatorParam):
    """Per-step decode CPU seconds summed over the day's videos, in the order of CPU_STEPS."""

    def zero(self, value):
        return [0.0] * len(CPU_STEPS)

    def addInPlace(self, a, b):
        return [x + y for x, y in zip(a, b)]


def cpu_steps_accumulator(spark: SparkSession):
    """An accumulator for `sample_videos(cpu_steps=...)`; read `.value` after the first action."""
    return spark.sparkContext.accumulator([0.0] * len(CPU_STEPS), _CpuSteps())


@dataclass(frozen=True)
class PrefilterStep:
    """The prefilter run in the decoder (the nightly run): the registry's model `version`,
    loaded once per Python worker, and `threshold`. A frame keeps its JPEG when it scores at
    least `threshold`, or when `audit.draw_value(date, call, frame) < keep_rate` (the audit's
    share of the rejected frames; 1.0 keeps every frame's JPEG). `cpu` (a float accumulator,
    `spark.sparkContext.accumulator(0.0)`) sums the CPU seconds of the model's forward passes:
    the prefilter stage's share of the sampling job's CPU."""

    registry_uri: str
    endpoint_url: str | None
    version: str
    threshold: float
    date: str
    keep_rate: float = 1.0
    cpu: object = None

    def for_video(self, call_id: str) -> "_VideoScorer":
        """The scorer of one video's frames (`percolate.video.frame_output.FrameScorer`), the model
        loaded and warmed up in this worker first: a decode child forked after this needs no
        file to run it."""
        from percolate.inference import load_model, warm_up

        model = load_model(self.registry_uri, self.endpoint_url, "prefilter", self.version)
        warm_up(model)
        return _VideoScorer(model, (model.input.width, model.input.height), tuning.PREFILTER_FORWARD_BATCH,
                            float(self.threshold), self.date, str(call_id), float(self.keep_rate))


@dataclass(frozen=True)
class _VideoScorer:
    """`PrefilterStep.for_video`. It may run in a confined decode child, which can open no
    file: everything it calls is imported here, before the fork."""

    model: object
    size: tuple[int, int]
    batch: int
    threshold: float
    date: str
    call_id: str
    keep_rate: float

    def score(self, inputs):
        return prefilter_arrays(self.model, inputs)

    def keep(self, frame_index: int, score: float) -> bool:
        return score >= self.threshold or (
            self.keep_rate > 0 and draw_value(self.date, self.call_id, frame_index) < self.keep_rate)


def audit_keep_rate(rejected_budget: int, expected_frames: float | None, margin: float = 3.0) -> float:
    """The share of rejected frames whose JPEG the sampler keeps for the audit: `margin` times
    the audit's budget over the frames the day is expected to sample (its budget step's
    estimate), at most 1. Fixed before the day: the audit draws `min(its probability, this)`
    (`percolate.transforms.audit.sample_audit`). Unknown size: 1.0, every JPEG kept."""
    if not expected_frames or expected_frames <= 0:
        return 1.0
    return min(1.0, margin * max(0, int(rejected_budget)) / float(expected_frames))


SPOOL_MEMORY_BYTES = 64 << 20  # one video's frames kept in memory before they spill to a local file
BATCH_ROWS, BATCH_BYTES = 256, 32 << 20  # the Arrow batches handed to Spark


class _FrameSpool:
    """One video's frame rows until its outcome is known: in memory up to
    `SPOOL_MEMORY_BYTES`, then in a local Arrow file; read back in bounded batches. A 4-hour
    call (14,400 JPEGs, 1-2 GB) never sits in the worker's memory at once."""

    def __init__(self, schema, memory_bytes: int = SPOOL_MEMORY_BYTES):
        self.schema, self.memory_bytes = schema, memory_bytes
        self.rows: list[dict] = []
        self.bytes = 0
        self.spilled = 0
        self._file = self._writer = None

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.bytes += len(row["jpeg"] or b"")
        if self.bytes >= min(self.memory_bytes, BATCH_BYTES) and (self._writer or self.bytes >= self.memory_bytes):
            self._spill()

    def _spill(self) -> None:
        import tempfile

        import pyarrow as pa

        if self._writer is None:
            self._file = tempfile.NamedTemporaryFile(prefix="percolate-frames-", suffix=".arrow")
            self._writer = pa.ipc.new_file(self._file.name, self.schema)
        for batch in _batches(self.rows, self.schema):
            self._writer.write_batch(batch)
        self.spilled += len(self.rows)
        self.rows, self.bytes = [], 0

    def batches(self):
        """Every row added, in order, as Arrow batches of at most BATCH_ROWS rows / BATCH_BYTES."""
        import pyarrow as pa

        if self._writer is not None:
            self._writer.close()
            self._writer = None
            with pa.memory_map(self._file.name) as source:
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)
        yield from _batches(self.rows, self.schema)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()  # removes it
        self.rows, self._file, self._writer = [], None, None


def _batches(rows: list[dict], schema):
    import pyarrow as pa

    start = 0
    while start < len(rows):
        end, size = start, 0
        while end < len(rows) and end - start < BATCH_ROWS and (end == start or size < BATCH_BYTES):
            size += len(rows[end]["jpeg"] or b"")
            end += 1
        yield pa.RecordBatch.from_pylist(rows[start:end], schema=schema)
        start = end


def _with_decode_mode(batch, mode: str):
    """The batch with every row's `decode_mode` set (known only once the video is decoded)."""
    import pyarrow as pa

    columns = [pa.array([mode] * batch.num_rows, batch.schema.field(i).type) if name == "decode_mode"
               else batch.column(i) for i, name in enumerate(batch.schema.names)]
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def _decode_partition(batches, store_uri: str, endpoint_url: str | None, fps: float,
                      max_side: int, jpeg_quality: int, limits: "DecodeLimits", isolated: bool,
                      cpu_steps=None, prefilter: PrefilterStep | None = None) -> Iterator:
    """Each video: its frames (streamed through a `_FrameSpool`) and its outcome row.

    Faults of the video itself become a quarantine row. Faults of the machine (the object
    store answering 403/5xx or throttling, missing credentials, a full local disk, a failed
    fork: anything raised while fetching the file, and `DecoderUnavailable`) are raised: the
    Spark task fails, is retried, and the run fails rather than publish a day with calls
    quarantined for something they did not do."""
    import resource
    import time

    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from percolate.io.store import open_store
    from percolate.video.decode import stream_video
    from percolate.video.isolation import stream_video_isolated
    from percolate.video.limits import DecoderUnavailable, VideoRejected, frame_cap

    decode = stream_video_isolated if isolated else stream_video

    def cpu_seconds() -> float:  # this worker's and its reaped decode children's
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    store = open_store(store_uri, endpoint_url)
    schema = to_arrow_schema(spark_schema(SCORED_ROWS))
    cap = frame_cap(limits, fps)
    for batch in batches:
        for video in batch.to_pylist():
            cpu0 = cpu_seconds()
            base = {"call_id": video["call_id"], "user_id": video["user_id"], "video_key": video["video_key"]}
            outcome = dict(base, row_kind="video", status="ok")
            spool = _FrameSpool(schema)
            mode = []

            def take(f, spool=spool, base=base, mode=mode):
                if spool.spilled + len(spool.rows) >= cap:  # the in-process decoder has no cap of its own
                    raise VideoRejected("too_many_frames", f"more than {cap} sampled frames")
                row = dict(base, row_kind="frame", frame_index=f.frame_index, ts_ms=f.ts_ms, width=f.width,
                           height=f.height, jpeg=f.jpeg or None, jpeg_bytes=len(f.jpeg) or None, decode_mode=None)
                if f.scores is not None:
                    score, loc_x, loc_y, flops = f.scores
                    row.update(prefilter_score=score, loc_x=loc_x, loc_y=loc_y,
                               prefilter_flops=None if flops != flops else int(round(flops)))  # NaN: unknown
                spool.add(row)
            try:
                try:
                    if not (video["user_id"] or "").strip():
                        raise VideoRejected("missing_user", "the manifest names no user for this call")
                    if not store.exists(video["video_key"]):  # a store error here is raised: the task retries
                        raise VideoRejected("missing_file", f"no object at {video['video_key']}")
                    scorer = prefilter.for_video(video["call_id"]) if prefilter is not None else None
                    with store.local_copy(video["video_key"]) as path:
                        try:
                            info = decode(path, take, fps=fps, max_side=max_side, jpeg_quality=jpeg_quality,
                                          limits=limits, scorer=scorer)
                        except (VideoRejected, DecoderUnavailable):
                            raise
                        except Exception as exc:  # noqa: BLE001 - the decoder failed on this file
                            raise VideoRejected("decode_error", f"{type(exc).__name__}: {exc}"[:1000]) from None
                    mode.append(info.decode_mode)
                    if cpu_steps is not None:
                        cpu_steps.add([info.decode_cpu_s, info.convert_cpu_s, info.encode_cpu_s])
                    if prefilter is not None and prefilter.cpu is not None:
                        prefilter.cpu.add(info.score_cpu_s)
                    frames = spool.spilled + len(spool.rows)
                    outcome.update(duration_s=info.duration_s, width=info.width, height=info.height,
                                   codec=info.codec, decode_mode=info.decode_mode,
                                   decode_errors=info.errors, frames=frames)
                    if not frames:
                        outcome.update(status="quarantined", reason="corrupt_stream",
                                       message="no frame could be decoded")
                except VideoRejected as exc:
                    outcome.update(status="quarantined", reason=exc.reason, message=str(exc.message)[:1000])
                outcome["cpu_s"] = round(cpu_seconds() - cpu0, 4)
                if outcome["status"] == "ok":  # a quarantined video contributes no frames
                    for frames_batch in spool.batches():
                        yield _with_decode_mode(frames_batch, mode[0])
                yield pa.RecordBatch.from_pylist([outcome], schema=schema)
            finally:
                spool.close()


def sample_videos(manifest: DataFrame, *, store_uri: str, endpoint_url: str | None, fps: float,
                  max_side: int, jpeg_quality: int, limits: "DecodeLimits", isolated: bool = True,
                  cpu_steps=None, prefilter: PrefilterStep | None = None) -> DataFrame:
    """Manifest rows -> sampled frame rows and one outcome row per video (`row_kind`).

    `limits` bound each video's decode; `isolated` runs each decode in a forked child
    that is killed at the time limit and capped in memory. `cpu_steps`
    (`cpu_steps_accumulator`) sums the decoders' CPU by step: compute the result once
    (persist it), or the sums count every recomputation.

    The rows carry `SAMPLED_SCORES`: with `prefilter`, each frame's score from that model
    (`scored_frames`), and `jpeg` only where the prefilter kept the frame; without, null
    scores and every frame's JPEG.
    """
    return manifest.mapInArrow(
        lambda batches: _decode_partition(batches, store_uri, endpoint_url, fps, max_side,
                                          jpeg_quality, limits, isolated, cpu_steps, prefilter),
        spark_schema(SCORED_ROWS),
    )


def frames_of(sampled: DataFrame) -> DataFrame:
    """The sampled frames whose JPEG was kept (every frame, without a prefilter)."""
    return sampled.where((F.col("row_kind") == "frame") & F.col("jpeg").isNotNull()).select(*names(SAMPLED_FRAMES))


def scored_frames(sampled: DataFrame) -> DataFrame:
    """The frames of `sample_videos(..., prefilter=...)` as the prefilter's output with the
    pixels (`scoring.PREFILTER_WITH_PIXELS`): what `mark_passed`, `score_rows` and
    `survivor_rows` take."""
    from percolate.transforms.scoring import PREFILTER_WITH_PIXELS

    return sampled.where(F.col("row_kind") == "frame").select(*names(PREFILTER_WITH_PIXELS))


def outcomes_of(sampled: DataFrame) -> DataFrame:
    return sampled.where(F.col("row_kind") == "video").select(*names(VIDEO_OUTCOMES))


def decode_tasks(sizes: list[int | None], parallelism: int, task_bytes: int = tuning.DECODE_TASK_BYTES,
                 min_waves: int = tuning.DECODE_MIN_WAVES, max_tasks: int = 100_000) -> int:
    """How many sampling tasks a day of videos of these stored sizes gets: one per
    `task_bytes`, at least `min_waves` per core (`parallelism`), never more than videos."""
    cores = max(1, int(parallelism))
    waves = max(min_waves, -(-sum(max(0, s or 0) for s in sizes) // (cores * task_bytes)))
    return max(1, min(len(sizes), cores * waves, max_tasks))


def assign_tasks(sizes: list[int | None], tasks: int) -> list[int]:
    """Each video's task: largest first into the task with the fewest bytes so far (a video
    of unknown size counts as 1 byte, so those spread evenly). Deterministic."""
    import heapq

    load = [(0, t) for t in range(max(1, tasks))]
    out = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-(sizes[i] or 0), i)):
        total, t = heapq.heappop(load)
        out[i] = t
        heapq.heappush(load, (total + max(1, sizes[i] or 0), t))
    return out


def packed_frame(spark: SparkSession, rows: list[tuple], schema, sizes: list[int | None],
                 tasks: int | None = None) -> DataFrame:
    """`rows` (of `schema`, a StructType) as a DataFrame of `tasks` partitions (default
    `decode_tasks`) of about the same bytes each: partition i holds the rows `assign_tasks`
    gives task i. A range of one row per partition joined to the broadcast rows keeps that
    layout, with no shuffle."""
    n = tasks or decode_tasks(sizes, spark.sparkContext.defaultParallelism)
    n = max(1, min(n, len(rows)))
    columns = [f.name for f in schema.fields]
    df = spark.createDataFrame([(*row, t) for row, t in zip(rows, assign_tasks(sizes, n))],
                               StructType(list(schema.fields)).add("task", "long", False))
    slots = spark.range(0, n, 1, numPartitions=n).withColumnRenamed("id", "task")
    return slots.join(F.broadcast(df), "task").select(*columns)


def manifest_frame(spark: SparkSession, rows: list[dict], tasks: int | None = None) -> DataFrame:
    """The manifest in `packed_frame`'s layout: tasks of about the same stored bytes each."""
    return packed_frame(spark, [tuple(r[c] for c in names(MANIFEST)) for r in rows], spark_schema(MANIFEST),
                        [r.get("size_bytes") for r in rows], tasks)


def sampling_figures(outcomes: DataFrame) -> dict:
    """The day's counts: videos, sampled, frames, video seconds, decode CPU, decode modes."""
    stats = outcomes.agg(
        F.count("*").alias("videos"),
        F.sum(F.when(F.col("status") == "ok", 1).otherwise(0)).alias("videos_ok"),
        F.sum("frames").alias("frames"),
        F.sum(F.when(F.col("status") == "ok", F.col("duration_s"))).alias("video_seconds"),
        F.sum("cpu_s").alias("decode_cpu_s"),
        F.collect_set("decode_mode").alias("decode_modes"),
    ).first().asDict()
    return {"videos": int(stats["videos"] or 0), "videos_ok": int(stats["videos_ok"] or 0),
            "sampled_frames": int(stats["frames"] or 0), "video_seconds": float(stats["video_seconds"] or 0.0),
            "worker_cpu_s": float(stats["decode_cpu_s"] or 0.0),
            "decode_modes": sorted(m for m in stats["decode_modes"] if m)}


def scoring_figures(scored: DataFrame) -> dict:
    """The prefilter's counts from `mark_passed(scored_frames(...))`: frames in, frames passed,
    mean FLOPs per frame (None when the model's spec does not say)."""
    counts = scored.agg(F.count("*").alias("frames"), F.sum(F.col("passed").cast("int")).alias("passed"),
                        F.avg("prefilter_flops").alias("flops")).first()
    return {"frames_in": int(counts["frames"]), "frames_passed": int(counts["passed"] or 0),
            "flops_per_frame": None if counts["flops"] is None else round(float(counts["flops"]))}
