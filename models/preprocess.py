"""The one preprocessing path shared by training and inference.

JPEG bytes -> decode (with a fast downscaled JPEG draft) -> optionally a square crop
around a location (the prefilter's) -> bilinear resize to exactly the model's input
size -> uint8 NHWC -> normalised float NCHW tensor.
Training decodes once with `decode_batch` and calls `to_tensor` per batch; inference
(`models.predictor`) does the same per batch of frames.
"""

from __future__ import annotations

import functools
import io
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """Model input: size in pixels and per-channel mean/std on the [0, 1] scale.

    `crop`: when set, the model sees a square crop whose side is this fraction of the
    frame height, centred on a location given at inference (the prefilter's), instead of
    the whole frame.
    """

    width: int
    height: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(
            width=int(d["width"]),
            height=int(d["height"]),
            mean=tuple(float(x) for x in d.get("mean", IMAGENET_MEAN)),
            std=tuple(float(x) for x in d.get("std", IMAGENET_STD)),
            crop=float(d["crop"]) if d.get("crop") else None,
        )


def decode_jpeg(data: bytes, draft_size: tuple[int, int] | None = None) -> np.ndarray:
    """JPEG bytes -> HxWx3 uint8 RGB.

    With `draft_size=(w, h)` libjpeg decodes at the smallest 1/2, 1/4 or 1/8
    scale that is still at least that size (much faster than a full decode).
    """
    with Image.open(io.BytesIO(data)) as im:
        if draft_size is not None and im.format == "JPEG":
            im.draft("RGB", draft_size)
        return np.asarray(im.convert("RGB"))


def resize(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HxWx3 uint8 -> spec.height x spec.width x 3 uint8 (Pillow BILINEAR)."""
    if img.shape[0] == spec.height and img.shape[1] == spec.width:
        return np.ascontiguousarray(img)
    im = Image.fromarray(img).resize((spec.width, spec.height), Image.BILINEAR)
    return np.asarray(im)


def crop_square(img: np.ndarray, center: tuple[float, float], frac: float) -> np.ndarray:
    """Square crop of side `frac` x frame height around `center` ((x, y) in [0, 1]),
    shifted to stay inside the frame."""
    h, w = img.shape[:2]
    side = max(2, min(h, w, int(round(frac * h))))
    cx, cy = float(center[0]) * w, float(center[1]) * h
    x0 = int(round(min(max(cx - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2, 0), h - side)))
    return img[y0:y0 + side, x0:x0 + side]


def decode_batch(jpegs: list[bytes], spec: InputSpec, centers=None) -> np.ndarray:
    """Decode (+ crop around `centers` when the spec crops) + resize -> NxHxWx3 uint8."""
    out = np.empty((len(jpegs), spec.height, spec.width, 3), dtype=np.uint8)
    cropping = spec.crop is not None
    if cropping and centers is None:
        centers = np.full((len(jpegs), 2), 0.5)
    for i, data in enumerate(jpegs):
        if cropping:
            out[i] = resize(crop_square(decode_jpeg(data), centers[i], spec.crop), spec)
        else:
            out[i] = resize(decode_jpeg(data, (spec.width, spec.height)), spec)
    return out


def to_tensor(batch_uint8: np.ndarray, spec: InputSpec, channels_last: bool = False) -> torch.Tensor:
    """NxHxWx3 uint8 -> N x 3 x H x W float32, (x/255 - mean) / std; laid out channels-last
    (NHWC in memory, the layout the frames already have: no transposing copy) if asked.

    The frames are normalised in their own NHWC layout, a row of pixels at a time against the
    channel means and deviations repeated along the row: the same float operations as
    broadcasting a (1, 3, 1, 1) tensor over NCHW, so the same numbers bit for bit, at a sixth
    of the CPU (0.18 -> 0.03 ms a 160x90 frame on one thread, 2026-12-07, docs/tuning.md):
    torch's (3,)-wide broadcast is not vectorised, a row-wide one is.
    """
    if batch_uint8.ndim == 3:
        batch_uint8 = batch_uint8[None]
    x = torch.from_numpy(np.ascontiguousarray(batch_uint8)).float()  # N x H x W x 3, a new tensor
    mean, std = _row_stats(spec.mean, spec.std, x.shape[2])
    rows = x.view(-1, mean.shape[1])
    rows.sub_(mean).div_(std)
    x = x.permute(0, 3, 1, 2)  # N x 3 x H x W, channels-last in memory
    return x if channels_last else x.contiguous()


@functools.lru_cache(maxsize=32)
def _row_stats(mean: tuple[float, ...], std: tuple[float, ...], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, width * 3) rows of mean * 255 and std * 255, channel by channel as NHWC lays them out."""
    m = torch.tensor(mean, dtype=torch.float32) * 255.0
    s = torch.tensor(std, dtype=torch.float32) * 255.0
    return m.repeat(width).view(1, -1), s.repeat(width).view(1, -1)
