"""Reusing the heavy model's answer for an input it has already seen in the same call.

A static look-alike (a plant pot, a poster) passes the prefilter in every sampled frame of
a call, and the heavy model's input crop is then the same picture each time. `InputReuse`
compares each input with the inputs of the same call the model already ran on; when no
block of it differs by more than `tolerance` grey levels, the earlier answer is reused
instead of running the model again.

The test is on the model's own input (after crop and resize), block by block, so anything
entering the crop - a cup, a hand - changes at least one block and the model runs. The
pipeline's tolerance (`Settings.heavy_reuse_tolerance`, 4 grey levels) sits above the
compression noise between sampled frames of a static background (under 3 on training day
2026-01-01) and below the change of a block that something enters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_GRID = 8  # blocks per side
MAX_REFERENCES = 16  # inputs remembered per call; the oldest goes first


def block_difference(a: np.ndarray, b: np.ndarray, grid: int = DEFAULT_GRID) -> float:
    """Largest mean absolute difference (grey levels) over a grid x grid split of two HxWxC
    uint8 images of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"inputs differ in shape: {a.shape} vs {b.shape}")
    return float(_block_average(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=-1), grid).max())


def block_means(image: np.ndarray, grid: int = DEFAULT_GRID) -> np.ndarray:
    """Mean grey level of each block of `block_difference`'s split of an HxWxC uint8 image.

    The gap between two images' means of a block is at most their mean absolute difference
    there, so the largest gap is a lower bound of `block_difference`: an input whose bound is
    over the tolerance differs from that reference without comparing every pixel (on the
    benchmark day's 239 survivors, `classify_chunk` 6.4-6.7 -> 5.2-5.3 CPU-ms a frame, with the
    same matches; docs/tuning.md)."""
    return _block_average(image.astype(np.float64).mean(axis=-1), grid)


def _block_average(d: np.ndarray, grid: int) -> np.ndarray:
    """Mean of each block of a grid x grid split (at most one block per row or column) of 2-D `d`."""
    ys = np.linspace(0, d.shape[0], min(grid, d.shape[0]) + 1).astype(int)
    xs = np.linspace(0, d.shape[1], min(grid, d.shape[1]) + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(d, ys[:-1], axis=0), xs[:-1], axis=1)
    return sums / np.outer(np.diff(ys), np.diff(xs))


@dataclass
class Reference:
    """An input the model runs on; `output` is filled in once it has run."""

    frame_index: int
    image: np.ndarray
    output: np.ndarray | None = None
    blocks: np.ndarray | None = None  # block_means(image), when reuse compares against it


@dataclass
class InputReuse:
    """The inputs the model runs on in the current call, to reuse their outputs.

    Feed rows in call order (frames of one call together, by frame index). For each row,
    `match` gives a remembered input of the same call close enough to reuse; when there is
    none, the model runs on the row and `remember` keeps its input (set the reference's
    `output` after the run). Moving to another call forgets the last one, so answers never
    cross calls. A tolerance <= 0 turns reuse off.
    """

    tolerance: float  # grey levels (0-255): mean absolute difference of the worst block
    grid: int = DEFAULT_GRID
    max_references: int = MAX_REFERENCES
    _call: object = None
    _refs: list[Reference] = field(default_factory=list)  # most recent last

    @property
    def enabled(self) -> bool:
        return self.tolerance > 0

    def _enter(self, call_id) -> None:
        if call_id != self._call:
            self._call, self._refs = call_id, []

    def match(self, call_id, image: np.ndarray) -> Reference | None:
        """The most recent remembered input of this call within tolerance of `image`."""
        self._enter(call_id)
        if not self.enabled or not self._refs:
            return None
        blocks = block_means(image, self.grid)
        for ref in reversed(self._refs):
            # a quick lower bound first (block_means); the margin keeps rounding from deciding
            if ref.blocks is not None and float(np.abs(blocks - ref.blocks).max()) > self.tolerance + 1e-6:
                continue
            if block_difference(image, ref.image, self.grid) <= self.tolerance:
                return ref
        return None

    def remember(self, call_id, frame_index: int, image: np.ndarray) -> Reference:
        self._enter(call_id)
        if not self.enabled:  # nothing is compared later: no copy to keep
            return Reference(int(frame_index), image)
        ref = Reference(int(frame_index), np.array(image, copy=True), blocks=block_means(image, self.grid))
        self._refs.append(ref)
        del self._refs[:-self.max_references]
        return ref
