"""Training-time augmentation of uint8 frames (NxHxWx3): flips, shifts, brightness and
contrast, zoom-out (smaller objects) and recolouring (unseen colours). Boxes, when given,
move with the pictures."""

from __future__ import annotations

import math

import numpy as np


def _zoom_out(img: np.ndarray, scale: float,
              rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Shrink by `scale` and fill the frame back by repeating its edges (a reflection could repeat
    an object outside its box) at a random offset: smaller objects.

    Returns the image and where the shrunk picture lies in it: (top, left, height, width).
    """
    from PIL import Image

    h, w = img.shape[:2]
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(img).resize((sw, sh), Image.BILINEAR))
    top, left = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
    return np.pad(small, ((top, h - sh - top), (left, w - sw - left), (0, 0)), mode="edge"), (top, left, sh, sw)


def augment(batch: np.ndarray, rng: np.random.Generator, max_shift: float = 0.1,
            zoom_out: float = 0.0, min_scale: float = 0.65, boxes: np.ndarray | None = None):
    """Random h-flip, translation (reflect-pad + crop) and brightness/contrast on NxHxWx3 uint8.

    With `zoom_out` > 0, that share of the images is first shrunk by a factor in
    [min_scale, 1): more small, far-away objects, which are the ones a prefilter misses.
    With `boxes` (N x K x 4 fractions x0, y0, x1, y1; NaN for none) returns
    (images, boxes) with the boxes moved like the pictures (a box pushed out of the
    picture becomes NaN).
    """
    n, h, w, _ = batch.shape
    out = batch.copy()
    bx = None if boxes is None else np.array(boxes, dtype=np.float64).reshape(n, -1, 4)
    if zoom_out > 0:
        for i in np.flatnonzero(rng.random(n) < zoom_out):
            out[i], (top, left, sh, sw) = _zoom_out(out[i], float(rng.uniform(min_scale, 1.0)), rng)
            if bx is not None:
                bx[i] = bx[i] * [sw / w, sh / h, sw / w, sh / h] + [left / w, top / h, left / w, top / h]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    if bx is not None:
        f = bx[flip]
        bx[flip] = np.stack([1 - f[..., 2], f[..., 1], 1 - f[..., 0], f[..., 3]], axis=-1)
    ph, pw = max(1, int(h * max_shift)), max(1, int(w * max_shift))
    padded = np.pad(out, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="reflect")
    dy = rng.integers(0, 2 * ph + 1, n)
    dx = rng.integers(0, 2 * pw + 1, n)
    for i in range(n):
        out[i] = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    x = out.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(0.7, 1.3, (n, 1, 1, 1)).astype(np.float32)
    bright = rng.uniform(-25, 25, (n, 1, 1, 1)).astype(np.float32)
    x = (x - mean) * contrast + mean + bright
    images = np.clip(x, 0, 255).astype(np.uint8)
    if bx is None:
        return images
    shift = np.stack([(pw - dx) / w, (ph - dy) / h, (pw - dx) / w, (ph - dy) / h], axis=1)
    bx = np.clip(bx + shift[:, None, :], 0.0, 1.0)
    gone = ~((bx[..., 2] > bx[..., 0]) & (bx[..., 3] > bx[..., 1]))
    bx[gone] = np.nan
    return images, bx


def hue_rotation(angle: float, swap: bool = False) -> np.ndarray:
    """3x3 RGB matrix turning hues by `angle` radians about the grey axis (greys and
    brightness stay), then swapping red and blue when `swap`."""
    u = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    m = math.cos(angle) * np.eye(3) + (1 - math.cos(angle)) * np.outer(u, u) + math.sin(angle) * cross
    return (m[::-1] if swap else m).astype(np.float32)


def recolour(images: np.ndarray, rng: np.random.Generator, share: float,
             allowed: np.ndarray | None = None) -> np.ndarray:
    """Give `share` of the allowed images (NxHxWx3 uint8) other colours: a hue turn of
    30-330 degrees, half of them mirrored.

    Only for frames whose target is "none", which no colour can change: shelves, plants
    and footage in colours the training backgrounds never had, so that a look-alike in
    an unseen room is not taken for a brand. Returns a copy.
    """
    out = images.copy()
    pick = rng.random(len(images)) < share
    if allowed is not None:
        pick &= np.asarray(allowed, bool)
    for i in np.flatnonzero(pick):
        m = hue_rotation(float(rng.uniform(math.pi / 6, 11 * math.pi / 6)), bool(rng.random() < 0.5))
        out[i] = np.clip(out[i].astype(np.float32) @ m.T, 0, 255).astype(np.uint8)
    return out


