"""The one inference path: a model with its spec, from JPEG bytes to probabilities.

The Spark jobs (through `percolate.inference`), calibration and training all score frames
through a `Predictor`, so a threshold is calibrated on exactly the numbers the pipeline
computes. Inputs are decoded once (`decode_inputs`, uint8) and then normalised and run in
batches of `BATCH` frames, or of the `batch` the caller passes (the Spark workers pass the
measured sizes of `percolate.core.tuning`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from models.layers import fold_batch_norm
from models.preprocess import InputSpec, decode_batch, to_tensor

# Built-in models run channels-last (NHWC in memory): one torch thread, the shipped models,
# real frames (640 sampled from the benchmark day), best of 5 (2026-12-06, 2-core Intel Xeon,
# `percolate.core.tuning` for the other settings): the prefilter ensemble 0.54 against 1.04
# CPU-ms a frame, normalising included (its depthwise convolutions are much faster in NHWC, and
# the frames are NHWC already, so no transposing copy); the heavy model 4.4 against 6.2 ms a
# crop. Outputs move by at most 3e-6 (the golden test allows 1e-4). Training already runs
# channels-last (`models.fit`).
CHANNELS_LAST = True
# Built-in models run with each convolution's batch norm folded into it (`models.layers.
# fold_batch_norm`), on a copy: `module` stays as trained and registered. The shipped models,
# one torch thread, channels-last, the golden frames repeated to 640, medians of 5 (2026-12-07,
# 2-core AMD EPYC under KVM, docs/tuning.md): the prefilter ensemble 0.84 -> 0.66 CPU-ms a
# frame, the heavy model 3.5 -> 2.1 ms a crop; outputs move by at most 5.4e-7 (the golden test
# allows 1e-4).
FOLD_BATCH_NORM = True
BATCH = 64  # frames per forward pass, everywhere: results do not depend on where a frame is scored


@dataclass
class Predictor:
    """A model ready for inference (eval mode), with its spec.

    A prefilter outputs one probability per frame; a heavy model `none` + one per class.
    """

    role: str
    version: str
    spec: dict
    module: nn.Module  # as trained and registered
    input: InputSpec = field(init=False)
    channels_last: bool = field(init=False)
    net: nn.Module = field(init=False, repr=False)  # what scores frames: `module`, or its folded copy

    def __post_init__(self):
        self.input = InputSpec.from_dict(self.spec["input"])
        self.module.eval()
        # built-in architectures run channels-last with batch norm folded (CHANNELS_LAST and
        # FOLD_BATCH_NORM above); a TorchScript model is code we did not write: it runs as it
        # is, on the contiguous NCHW tensors any model expects
        built_in = self.spec.get("arch") != "torchscript" and not isinstance(self.module, torch.jit.ScriptModule)
        self.channels_last = CHANNELS_LAST and built_in
        self.net = fold_batch_norm(self.module) if FOLD_BATCH_NORM and built_in else self.module
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    @property
    def class_names(self) -> list[str]:
        return list(self.spec["class_names"])

    @property
    def localizes(self) -> bool:
        """True when the model gives a location map (built-in prefilters)."""
        return hasattr(self.module, "logit_map")

    def predict_tensor(self, x: torch.Tensor) -> np.ndarray:
        """Normalised NCHW batch -> probabilities: (N,) for a prefilter, (N, C+1) for a heavy model."""
        with torch.inference_mode():
            out = self.net(x)
            if isinstance(out, (tuple, list)):
                out = out[0]
            out = out.float()
            already_probs = self.spec.get("output", "logits") == "probabilities"
            if self.role == "prefilter":
                out = out.reshape(out.shape[0], -1)[:, -1]
                probs = out if already_probs else torch.sigmoid(out)
            else:
                probs = out if already_probs else torch.softmax(out, dim=1)
        return probs.cpu().numpy()

    def decode_inputs(self, jpegs: list[bytes], centers=None) -> np.ndarray:
        """JPEG bytes -> the model's inputs before normalisation, NxHxWx3 uint8 (cropped
        around `centers`, (N, 2) x/y in [0, 1], when the model's input crops)."""
        return decode_batch(jpegs, self.input, centers)

    def predict_inputs(self, inputs: np.ndarray, batch: int = BATCH) -> np.ndarray:
        """Inputs from `decode_inputs` -> probabilities (see predict_tensor), `batch` frames per pass."""
        parts = [self.predict_tensor(to_tensor(inputs[i:i + batch], self.input, self.channels_last))
                 for i in range(0, len(inputs), batch)]
        if not parts:
            return np.zeros((0,) if self.role == "prefilter" else (0, len(self.class_names) + 1), np.float32)
        return np.concatenate(parts, axis=0)

    def locate_inputs(self, inputs: np.ndarray, batch: int = BATCH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prefilter scores (N,), where in the frame they peak ((N, 2), x/y in [0, 1]), and the
        FLOPs spent on each frame (N,): less than the spec's `flops_per_frame` on frames an
        early-exit ensemble stops after its first member; NaN when the spec does not know.

        A model without a location map gives the frame centre.
        """
        if not self.localizes:
            scores = self.predict_inputs(inputs, batch)
            return scores, np.full((len(scores), 2), 0.5, dtype=np.float32), self._frame_flops(None, len(scores))
        from models.prefilter import map_peaks

        scores, centers, opened = [], [], []
        gated = hasattr(self.net, "gated_logit_map")
        with torch.inference_mode():
            for i in range(0, len(inputs), batch):
                x = to_tensor(inputs[i:i + batch], self.input, self.channels_last)
                maps, is_open = self.net.gated_logit_map(x) if gated else (self.net.logit_map(x), None)
                peak, where = map_peaks(maps)
                scores.append(torch.sigmoid(peak).numpy())
                centers.append(where.numpy())
                if is_open is not None:
                    opened.append(is_open.numpy())
        if not scores:
            return np.zeros(0, np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.float64)
        n = sum(len(s) for s in scores)
        return (np.concatenate(scores), np.concatenate(centers),
                self._frame_flops(np.concatenate(opened) if gated else None, n))

    def _frame_flops(self, opened: np.ndarray | None, n: int) -> np.ndarray:
        """The spec's FLOPs per frame, or for an early-exit ensemble its first member's share
        of it plus the others' on the frames that opened the gate."""
        full = self.spec.get("flops_per_frame")
        if full is None:
            return np.full(n, np.nan)
        if opened is None:
            return np.full(n, float(full))
        from models.prefilter import gated_flops

        return gated_flops(float(full), len(self.module.members), opened)
