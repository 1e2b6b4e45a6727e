"""A sampled frame from the decoder to the caller: upright, at display aspect, scaled, as a
JPEG or raw RGB; with a `FrameScorer`, scored first (in batches) and converted only where the
scorer keeps it. The decode loop (`percolate.video.decode`, whose docstring describes both)
decides which frames are sampled; this module makes them into `SampledFrame`s and counts the
CPU of conversion, encoding, scoring and the caller's sink apart from decoding."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from typing import Callable, Protocol

import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from percolate.video.limits import SampledFrame, ScorerFailed
from percolate.video.probe import Deadline, check_min_side, output_size

PENDING_PIXELS = 32 << 20  # decoded frames (pixels) waiting for their batch to be scored


class FrameScorer(Protocol):
    """Scores sampled frames in the decoder (see the module's docstring)."""

    size: tuple[int, int]  # (width, height) of the model's input
    batch: int  # frames per call of `score`

    def score(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """N x height x width x 3 uint8 -> (score, loc_x, loc_y, flops), N values each."""

    def keep(self, frame_index: int, score: float) -> bool:
        """Whether the frame's pixels are kept (JPEG-encoded and handed on)."""


class FrameOutput:
    """The sampled frames of one video on their way to `sink`, with the CPU each step took
    (`convert_cpu`, `encode_cpu`, `score_cpu`, `sink_cpu`). `emit` takes a decoded frame;
    with a scorer it waits for its batch, so call `flush` once decoding is done."""

    def __init__(self, sink: Callable[[SampledFrame], None], *, max_side: int, min_side: int, jpeg_quality: int,
                 frame_format: str, threads: int, sar, time_base, deadline: Deadline,
                 scorer: FrameScorer | None = None):
        self.sink, self.max_side, self.min_side, self.jpeg_quality = sink, max_side, min_side, jpeg_quality
        self.rgb_out, self.threads, self.sar, self.time_base = frame_format == "rgb", threads, sar, time_base
        self.deadline, self.scorer = deadline, scorer
        self.convert_cpu = self.encode_cpu = self.sink_cpu = self.score_cpu = 0.0
        self.n_out, self.first_size = 0, None
        self.pending: list[tuple] = []  # frames waiting for the scorer: (frame, bucket, rel, rotation, input)
        self.pending_pixels = 0
        self.scaler = VideoReformatter() if scorer is not None else None  # to the scorer's input size
        # one reformatter per video: it caches the swscale context across frames (5x faster
        # than frame.reformat, which builds a new context every time)
        self.reformatter = VideoReformatter()

    def emit(self, frame, bucket: int, rel: int, rotation_cw: int) -> None:
        """A decoded frame sampled for `bucket` (`rel`: its pts after the stream start)."""
        if self.scorer is not None:
            self._queue(frame, bucket, rel, rotation_cw)
        else:
            self._hand_on(self._to_sample(frame, bucket, rel, rotation_cw))

    def _hand_on(self, sample: SampledFrame) -> None:
        self.n_out += 1
        if self.first_size is None:
            self.first_size = (sample.width, sample.height)
        c0 = time.process_time()
        self.sink(sample)
        self.sink_cpu += time.process_time() - c0

    def _queue(self, frame, bucket: int, rel: int, rotation_cw: int) -> None:
        """The frame scaled to the scorer's input (upright), waiting with the decoded frame
        for its batch; the batch is scored when full."""
        c0 = time.process_time()
        check_min_side(frame.width, frame.height, self.sar, self.max_side, self.min_side)
        sw, sh = self.scorer.size
        turned = rotation_cw in (90, 270)  # scale to the stored orientation, then turn
        small = self.scaler.reformat(frame, width=sh if turned else sw, height=sw if turned else sh,
                                     format="rgb24", interpolation="AREA", threads=self.threads).to_ndarray()
        if rotation_cw:
            small = np.ascontiguousarray(np.rot90(small, k=-(rotation_cw // 90)))
        self.convert_cpu += time.process_time() - c0
        self.pending.append((frame, bucket, rel, rotation_cw, small))
        self.pending_pixels += frame.width * frame.height
        if len(self.pending) >= self.scorer.batch or self.pending_pixels >= PENDING_PIXELS:
            self.flush()

    def flush(self) -> None:
        """Score the waiting frames; JPEG-encode those the scorer keeps; hand all of them on."""
        if not self.pending:
            return
        pending, self.pending, self.pending_pixels = self.pending, [], 0
        c0 = time.process_time()
        try:
            score, loc_x, loc_y, flops = self.scorer.score(np.stack([p[4] for p in pending]))
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the model's failure: say so, not corrupt_stream
            raise ScorerFailed(f"the scorer failed: {type(exc).__name__}: {exc}"[:1000]) from None
        self.score_cpu += time.process_time() - c0
        for i, (frame, bucket, rel, rotation_cw, _) in enumerate(pending):
            values = (float(score[i]), float(loc_x[i]), float(loc_y[i]), float(flops[i]))
            if self.scorer.keep(int(bucket), values[0]):
                sample = replace(self._to_sample(frame, bucket, rel, rotation_cw), scores=values)
            else:
                tw, th = output_size(frame.width, frame.height, self.sar, self.max_side)
                if rotation_cw in (90, 270):
                    tw, th = th, tw
                sample = SampledFrame(frame_index=int(bucket), ts_ms=self._ts_ms(rel), width=tw, height=th,
                                      jpeg=b"", scores=values)
            self._hand_on(sample)
        self.deadline.check()

    def _ts_ms(self, rel: int) -> int:
        return int(round(rel * self.time_base * 1000))

    def _to_sample(self, frame, bucket: int, rel: int, rotation_cw: int) -> SampledFrame:
        """The frame upright, at display aspect, long side at most max_side, as a JPEG or RGB."""
        c0 = time.process_time()
        w, h = frame.width, frame.height
        check_min_side(w, h, self.sar, self.max_side, self.min_side)
        tw, th = output_size(w, h, self.sar, self.max_side)
        if (tw, th) == (w, h) and frame.format.name == "rgb24":
            rgb = frame
        else:  # the scaler too runs on `threads`: no thread pool per video
            rgb = self.reformatter.reformat(frame, width=tw, height=th, format="rgb24",
                                            interpolation="BILINEAR", threads=self.threads)
        arr = rgb.to_ndarray()
        if rotation_cw:
            arr = np.ascontiguousarray(np.rot90(arr, k=-(rotation_cw // 90)))
        ts_ms = self._ts_ms(rel)
        if self.rgb_out:
            pixels = arr.tobytes()
            self.convert_cpu += time.process_time() - c0
            return SampledFrame(frame_index=int(bucket), ts_ms=ts_ms, width=arr.shape[1], height=arr.shape[0],
                                jpeg=b"", rgb=pixels)
        c1 = time.process_time()
        self.convert_cpu += c1 - c0
        img = Image.fromarray(arr, "RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self.jpeg_quality)
        self.encode_cpu += time.process_time() - c1
        return SampledFrame(frame_index=int(bucket), ts_ms=ts_ms, width=img.width, height=img.height,
                            jpeg=buf.getvalue())
