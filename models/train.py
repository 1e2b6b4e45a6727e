"""Training of the prefilter and heavy models from labelled frames, then calibration
and registration.

`frames` is a pandas DataFrame with columns jpeg (bytes, 640x360 JPEG), label (class
name or None), call_id, ts_ms, background; calibration frames may add user_id and day.
JPEGs are decoded once per model resolution (models.preprocess.decode_batch) and
augmented as uint8 arrays. Seeds are fixed; torch's thread count is the caller's.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from models.calibration import (choose_aggregation, early_exit_gate, heavy_predictions,
                                heavy_threshold_for_precision, prefilter_recall_at,
                                prefilter_threshold_for_recall)
from models.flops import count_flops
from models.heavy import DEFAULT_CROP as HEAVY_CROP
from models.heavy import DEFAULT_INPUT as HEAVY_INPUT
from models.heavy import HeavyEnsemble, MobileNetLike
from models.prefilter import DEFAULT_INPUT as PREFILTER_INPUT
from models.prefilter import PrefilterCNN, PrefilterEnsemble, gated_flops, map_peaks
from models.preprocess import InputSpec, decode_batch, to_tensor

Progress = Callable[[str], None] | None

# The training recipes fit_and_register uses unless told otherwise. The prefilter learns
# where cups are when frames carry boxes (box_mil_loss) and sees half its frames zoomed
# out (more small cups, the ones that set its threshold); more and harder negatives for
# the heavy model target look-alike cups. Both see 30% of their negatives in other colours
# (recolour): an unseen background in a brand's colours must not read as the brand.
PREFILTER_RECIPE: dict = {"zoom_out": 0.5, "recolour": 0.3}
HEAVY_RECIPE: dict = {"neg_ratio": 1.5, "hard_fraction": 0.7, "recolour": 0.3}


def default_prefilter_input() -> InputSpec:
    return InputSpec(*PREFILTER_INPUT)


def default_heavy_input() -> InputSpec:
    return InputSpec(*HEAVY_INPUT, crop=HEAVY_CROP)


def _has_label(labels) -> np.ndarray:
    return np.array([lab is not None and not (isinstance(lab, float) and math.isnan(lab))
                     and lab != "" for lab in labels], dtype=bool)


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


def box_cells(boxes: np.ndarray, h: int, w: int, margin: int = 0) -> torch.Tensor:
    """(N, h, w) bool: the cells of an h x w map whose centres lie in a frame's boxes
    (N x 4 or N x K x 4 fractions; NaN boxes select nothing).

    A box too small to hold a cell centre gets the cell under its centre; `margin` grows
    the selection by that many cells on every side.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    n0 = boxes.shape[0]
    if boxes.ndim == 3:
        k = boxes.shape[1]
        return box_cells(boxes.reshape(-1, 4), h, w, margin).reshape(n0, k, h, w).any(dim=1)
    b = torch.as_tensor(boxes.reshape(-1, 4))
    n = b.shape[0]
    valid = ~torch.isnan(b).any(dim=1)
    b = torch.nan_to_num(b, nan=-1.0)
    cx = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    cy = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    mx = (cx[None, :] >= b[:, 0:1]) & (cx[None, :] <= b[:, 2:3])  # (N, w)
    my = (cy[None, :] >= b[:, 1:2]) & (cy[None, :] <= b[:, 3:4])  # (N, h)
    ix = ((b[:, 0] + b[:, 2]) / 2 * w).floor().clamp(0, w - 1).long()
    iy = ((b[:, 1] + b[:, 3]) / 2 * h).floor().clamp(0, h - 1).long()
    mx[torch.arange(n), ix] = True
    my[torch.arange(n), iy] = True
    if margin:
        grow = torch.ones(1, 1, 2 * margin + 1)
        mx = torch.nn.functional.conv1d(mx.float()[:, None], grow, padding=margin)[:, 0] > 0
        my = torch.nn.functional.conv1d(my.float()[:, None], grow, padding=margin)[:, 0] > 0
    return my[:, :, None] & mx[:, None, :] & valid[:, None, None]


def _run_epochs(model: nn.Module, images: np.ndarray, targets: torch.Tensor, spec: InputSpec,
                epoch_indices: Callable[[int, np.random.Generator], np.ndarray],
                loss_fn: Callable, *, epochs: int, batch_size: int, lr: float,
                weight_decay: float, seed: int, name: str, progress: Progress,
                zoom_out: float = 0.0, boxes: np.ndarray | None = None,
                box_loss: Callable | None = None, recolour_share: float = 0.0,
                recolourable: np.ndarray | None = None) -> list[dict]:
    """Generic AdamW + one-cycle loop over uint8 images with augmentation.

    `recolour_share` of the `recolourable` images (N bool) get other colours (recolour).

    With `boxes` (N x K x 4, NaN for none), they are augmented with the images and
    `box_loss(model, x, y, boxes)` returns (loss, outputs) instead of loss_fn(model(x), y).
    """
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(epoch_indices(-1, np.random.default_rng(0))) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.2)
    # channels_last makes depthwise-conv backward several times faster on CPU
    model.to(memory_format=torch.channels_last)
    history = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        idx = epoch_indices(epoch, rng)
        idx = idx[rng.permutation(len(idx))]
        total, count, correct = 0.0, 0, 0
        for step in range(steps_per_epoch):
            b = idx[step * batch_size:(step + 1) * batch_size]
            if len(b) < 2:  # BatchNorm needs 2+ samples
                continue
            y = targets[b]
            if boxes is None:
                aug, bx = augment(images[b], rng, zoom_out=zoom_out), None
            else:
                aug, bx = augment(images[b], rng, zoom_out=zoom_out, boxes=boxes[b])
            if recolour_share > 0:
                aug = recolour(aug, rng, recolour_share, None if recolourable is None else recolourable[b])
            x = to_tensor(aug, spec).contiguous(memory_format=torch.channels_last)
            if bx is None:
                out = model(x)
                loss = loss_fn(out, y)
            else:
                loss, out = box_loss(model, x, y, bx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
            with torch.no_grad():
                pred = (out > 0).float() if out.ndim == 1 else out.argmax(1)
                correct += int((pred == y).sum())
        rec = {"epoch": epoch + 1, "loss": total / max(count, 1),
               "train_acc": correct / max(count, 1), "seconds": time.perf_counter() - t0}
        history.append(rec)
        if progress:
            progress(f"[{name}] epoch {rec['epoch']}/{epochs} loss={rec['loss']:.4f} "
                     f"acc={rec['train_acc']:.3f} {rec['seconds']:.1f}s")
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return history


def focal_bce(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
              pos_weight: float = 1.0) -> torch.Tensor:
    """Binary focal loss: BCE scaled by (1 - p_true)^gamma, so easy frames count little and the
    rare hard ones (tiny cups, cup-like shelves) drive training. gamma=0 is weighted BCE."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_true = p * targets + (1 - p) * (1 - targets)
    weight = (1 - p_true).pow(gamma) * (1 + (pos_weight - 1) * targets)
    return (weight * bce).mean()


def frame_boxes(frames: pd.DataFrame) -> np.ndarray | None:
    """N x K x 4 boxes from a `boxes` column (lists of [x0, y0, x1, y1]; NaN pads), or None without one."""
    if "boxes" not in frames.columns:
        return None
    lists = [[] if b is None or (isinstance(b, float) and math.isnan(b)) else list(b) for b in frames["boxes"]]
    out = np.full((len(frames), max([len(b) for b in lists] + [1]), 4), np.nan)
    for i, bs in enumerate(lists):
        for j, b in enumerate(bs):
            out[i, j] = np.asarray(b, dtype=np.float64)
    return out


def prefilter_targets(frames: pd.DataFrame) -> np.ndarray:
    """What the prefilter should pass: a labelled frame, or one flagged `lookalike` (an object
    only the heavy model can tell from the classes, e.g. an unbranded cup) when that column exists."""
    y = _has_label(frames["label"])
    if "lookalike" in frames.columns:
        y |= frames["lookalike"].fillna(False).to_numpy(dtype=bool)
    return y


def box_mil_loss(model: PrefilterCNN, x: torch.Tensor, y: torch.Tensor, boxes: np.ndarray,
                 crit: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame loss whose positive evidence must come from the cup.

    A frame with a cup box scores by its best cell inside the box (not anywhere), and its
    best cell away from the box (beyond one cell of margin) is pushed down as a negative.
    Frames without a box score by their best cell, as in plain multiple-instance training.
    Returns (loss, frame logits).
    """
    maps = model.logit_map(x)
    n, h, w = maps.shape
    inside = box_cells(boxes, h, w)
    away = ~box_cells(boxes, h, w, margin=1)
    floor = torch.finfo(maps.dtype).min
    frame = maps.amax(dim=(1, 2))
    boxed = inside.flatten(1).any(1) & (y > 0)
    logit = torch.where(boxed, torch.where(inside, maps, floor).amax(dim=(1, 2)), frame)
    loss = crit(logit, y)
    if boxed.any():
        rest = torch.where(away, maps, floor).amax(dim=(1, 2))[boxed]
        loss = loss + crit(rest, torch.zeros_like(rest)) * (boxed.sum() / n)
    return loss, frame


def train_prefilter(frames: pd.DataFrame, *, epochs: int = 40, seed: int = 0, batch_size: int = 64,
                    lr: float = 1e-2, weight_decay: float = 1e-4, pos_fraction: float = 0.4,
                    pos_weight: float = 2.0, focal_gamma: float = 0.0, zoom_out: float = 0.0,
                    recolour: float = 0.0, use_boxes: bool = True, input_spec: InputSpec | None = None,
                    arch_kwargs: dict | None = None, images: np.ndarray | None = None,
                    progress: Progress = print) -> tuple[PrefilterCNN, list[dict]]:
    """Binary cup/no-cup model (target: label is not None).

    Positives are oversampled to `pos_fraction` of each epoch and weighted by
    `pos_weight` in the loss (recall first); `focal_gamma` > 0 makes it a focal loss and
    `zoom_out` shrinks that share of the images (see augment) and `recolour` gives that
    share of the negatives other colours (see recolour). Targets are
    prefilter_targets (labels, plus look-alikes when flagged). With a `boxes` column and
    `use_boxes`, training is box-supervised (box_mil_loss) and negative frames with a box
    (an object only partly in view) are left out. `images` =
    decode_batch(frames.jpeg) at `input_spec` if already decoded.
    """
    spec = input_spec or default_prefilter_input()
    torch.manual_seed(seed)
    model = PrefilterCNN(**(arch_kwargs or {}))
    model.arch_kwargs = dict(arch_kwargs or {})  # for registration
    if images is None:
        images = decode_batch(list(frames["jpeg"]), spec)
    y = prefilter_targets(frames)
    boxes = frame_boxes(frames) if use_boxes else None
    usable = np.ones(len(y), bool)
    if boxes is not None:
        usable = y | np.isnan(boxes).all(axis=(1, 2))  # drop negatives that show part of an object
    pos, neg = np.flatnonzero(y & usable), np.flatnonzero(~y & usable)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("prefilter training needs both positive and negative frames")
    n = int(usable.sum())
    n_pos = int(round(n * pos_fraction))

    def epoch_indices(epoch, rng):
        return np.concatenate([rng.choice(pos, n_pos, replace=n_pos > len(pos)),
                               rng.choice(neg, n - n_pos, replace=n - n_pos > len(neg))])

    def crit(logits, targets):
        return focal_bce(logits, targets, focal_gamma, pos_weight)

    def box_loss(model, x, y, bx):
        return box_mil_loss(model, x, y, bx, crit)

    history = _run_epochs(model, images, torch.from_numpy(y.astype(np.float32)), spec,
                          epoch_indices, crit, epochs=epochs, batch_size=batch_size, lr=lr,
                          weight_decay=weight_decay, seed=seed, name="prefilter",
                          progress=progress, zoom_out=zoom_out, boxes=boxes, box_loss=box_loss,
                          recolour_share=recolour, recolourable=~y)
    return model, history


def predict_images(model: nn.Module, images: np.ndarray, spec: InputSpec,
                   batch_size: int = 128) -> np.ndarray:
    """Eval-mode outputs on decoded uint8 images: sigmoid (N,) or softmax (N, K)."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            out = model(to_tensor(images[i:i + batch_size], spec))
            outs.append(torch.sigmoid(out) if out.ndim == 1 else torch.softmax(out, 1))
    if not outs:
        return np.zeros((0,), np.float32)
    return torch.cat(outs).numpy()


def prefilter_peaks(model: PrefilterCNN, images: np.ndarray, spec: InputSpec,
                    batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Prefilter probabilities (N,) and peak centres (N, 2) on decoded uint8 images."""
    model.eval()
    scores, centers = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            peak, where = map_peaks(model.logit_map(to_tensor(images[i:i + batch_size], spec)))
            scores.append(torch.sigmoid(peak).numpy())
            centers.append(where.numpy())
    if not scores:
        return np.zeros(0, np.float32), np.zeros((0, 2), np.float32)
    return np.concatenate(scores), np.concatenate(centers)


def class_targets(labels, class_names: list[str]) -> np.ndarray:
    """Labels -> indices: 0 = none (None or a label not in class_names), 1..C = class."""
    lookup = {c: i + 1 for i, c in enumerate(class_names)}
    return np.array([lookup.get(lab, 0) if isinstance(lab, str) else 0 for lab in labels],
                    dtype=np.int64)


def train_heavy(frames: pd.DataFrame, class_names: list[str], *, epochs: int = 8, seed: int = 0,
                batch_size: int = 48, lr: float = 5e-3, weight_decay: float = 4e-5,
                width_mult: float = 0.5, arch_kwargs: dict | None = None,
                neg_ratio: float = 1.0, hard_fraction: float = 0.5, recolour: float = 0.0,
                prefilter_scores: np.ndarray | None = None, prefilter=None,
                input_spec: InputSpec | None = None, images: np.ndarray | None = None,
                progress: Progress = print) -> tuple[MobileNetLike, list[dict]]:
    """Cross-entropy over none + class_names.

    Each epoch: every class frame plus `neg_ratio` x as many negatives, of which
    `hard_fraction` are the hard negatives (highest prefilter scores, from
    `prefilter_scores` or a LoadedModel `prefilter`) and the rest a fresh random draw;
    `recolour` gives that share of the negatives other colours (see recolour).
    """
    spec = input_spec or default_heavy_input()
    torch.manual_seed(seed)
    kwargs = {"num_classes": len(class_names), "width_mult": width_mult, **(arch_kwargs or {})}
    model = MobileNetLike(**kwargs)
    if images is None:
        images = decode_batch(list(frames["jpeg"]), spec)
    y = class_targets(frames["label"], class_names)
    pos, neg = np.flatnonzero(y > 0), np.flatnonzero(y == 0)
    if len(pos) == 0:
        raise ValueError("heavy training needs frames of at least one class")
    if prefilter_scores is None and prefilter is not None:
        prefilter_scores = prefilter.predict_jpegs(list(frames["jpeg"]))
    n_neg = min(len(neg), int(round(neg_ratio * len(pos))))
    n_hard = int(round(n_neg * hard_fraction)) if prefilter_scores is not None else 0
    hard = neg[np.argsort(-np.asarray(prefilter_scores)[neg], kind="stable")[:n_hard]] \
        if n_hard else np.zeros(0, np.int64)
    rest = np.setdiff1d(neg, hard)

    def epoch_indices(epoch, rng):
        return np.concatenate([pos, hard, rng.choice(rest, min(len(rest), n_neg - n_hard),
                                                     replace=False)]).astype(np.int64)

    history = _run_epochs(model, images, torch.from_numpy(y), spec, epoch_indices,
                          nn.CrossEntropyLoss(), epochs=epochs, batch_size=batch_size, lr=lr,
                          weight_decay=weight_decay, seed=seed, name="heavy", progress=progress,
                          recolour_share=recolour, recolourable=y == 0)
    model.arch_kwargs = kwargs  # for registration
    return model, history


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank().to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_members(fit_one: Callable[[int], tuple[nn.Module, list[dict]]], count: int, ensemble_type: type,
                arch: str, ensemble_arch: str) -> tuple[nn.Module, str, dict, list[dict]]:
    """Train `count` models with fit_one(k) (k = 0, 1, ...: the caller's seed offset).

    One model is registered as itself (`arch`); more become one `ensemble_type` of them
    (`ensemble_arch`). Returns (model, arch, arch_kwargs, history); with several members each
    history record names its member.
    """
    members, history = [], []
    for k in range(count):
        member, hist = fit_one(k)
        members.append(member)
        history += [{**h, "member": k} for h in hist] if count > 1 else hist
    kwargs = members[0].arch_kwargs
    if count == 1:
        return members[0], arch, kwargs, history
    return ensemble_type.from_members(members, **kwargs), ensemble_arch, {"members": count, **kwargs}, history


def fit_and_register(train_frames: pd.DataFrame, calib_frames: pd.DataFrame,
                     class_names: list[str], registry, *, training_dates: list,
                     seed: int = 0, prefilter_epochs: int = 30, heavy_epochs: int = 12,
                     target_recall: float = 0.99, target_precision: float = 0.99,
                     confidence: float = 0.95, heavy_width_mult: float = 0.5, heavy_members: int = 1,
                     prefilter_members: int = 1, prefilter_channels: tuple[int, ...] | None = None,
                     prefilter_options: dict | None = None, heavy_options: dict | None = None,
                     alias: str | None = "production", progress: Progress = print) -> dict:
    """Train both models, calibrate on calib_frames, register both and set `alias`.

    Prefilter threshold: highest with recall lower bound >= target_recall on calib.
    `prefilter_members` > 1 trains that many prefilters (of `prefilter_channels`, default
    PrefilterCNN's) from seeds seed, seed+1, ... and registers the mean of their maps
    (PrefilterEnsemble, arch "prefilter_ensemble"); the threshold is the ensemble's.
    `heavy_members` > 1 trains that many heavy models from seeds seed, seed+1, ... and
    registers their average (HeavyEnsemble, arch "mobilenet_ensemble").
    Heavy: frame threshold for target_precision on calib frames that pass the prefilter,
    and the user-day rule (choose_aggregation) over all calib frames grouped by
    user_id (call_id when absent) and day (when present).
    """
    t_start = time.perf_counter()
    class_names = [str(c) for c in class_names]
    say = progress or (lambda _m: None)
    p_spec, h_spec = default_prefilter_input(), default_heavy_input()

    t0 = time.perf_counter()
    tr_p = decode_batch(list(train_frames["jpeg"]), p_spec)
    ca_p = decode_batch(list(calib_frames["jpeg"]), p_spec)
    decode_s = time.perf_counter() - t0
    say(f"decoded {len(train_frames)} train + {len(calib_frames)} calib frames in {decode_s:.1f}s")

    # -- prefilter ---------------------------------------------------------------
    t0 = time.perf_counter()
    pf_opts = {**PREFILTER_RECIPE, **(prefilter_options or {})}
    hv_opts = {**HEAVY_RECIPE, **(heavy_options or {})}
    pf_kwargs = {} if prefilter_channels is None else {"channels": [int(c) for c in prefilter_channels]}
    pf, pf_arch, pf_arch_kwargs, pf_hist = fit_members(
        lambda k: train_prefilter(train_frames, epochs=prefilter_epochs, seed=seed + k, input_spec=p_spec,
                                  images=tr_p, arch_kwargs=pf_kwargs, progress=progress, **pf_opts),
        prefilter_members, PrefilterEnsemble, "prefilter_cnn", "prefilter_ensemble")
    pf_train_s = time.perf_counter() - t0
    calib_pos = _has_label(calib_frames["label"])
    pf_calib, ca_centers = prefilter_peaks(pf, ca_p, p_spec)
    pf_cal = prefilter_threshold_for_recall(pf_calib, calib_pos, target_recall, confidence)
    say(f"prefilter threshold {pf_cal['threshold']:.4f} recall {pf_cal['recall']:.4f} "
        f"(lower bound {pf_cal['recall_lower_bound']:.4f}) pass rate {pf_cal['pass_rate']:.3f}")

    # -- heavy -------------------------------------------------------------------
    t0 = time.perf_counter()
    pf_train, tr_centers = prefilter_peaks(pf, tr_p, p_spec)
    # the heavy model learns on the crops the prefilter would hand it at inference
    tr_h = decode_batch(list(train_frames["jpeg"]), h_spec, tr_centers)
    hv, hv_arch, hv_kwargs, hv_hist = fit_members(
        lambda k: train_heavy(train_frames, class_names, epochs=heavy_epochs, seed=seed + k,
                              width_mult=heavy_width_mult, prefilter_scores=pf_train, input_spec=h_spec,
                              images=tr_h, progress=progress, **hv_opts),
        heavy_members, HeavyEnsemble, "mobilenet_like", "mobilenet_ensemble")
    hv_train_s = time.perf_counter() - t0
    del tr_h

    # The ensemble's early exit, set once the heavy model has learned on the full ensemble's
    # crops: from here on calibration sees the prefilter as the pipeline runs it.
    pf_flops = count_flops(pf, (3, p_spec.height, p_spec.width))  # every member: the worst case
    gate = {"gate": None, "open_rate": 1.0}
    if isinstance(pf, PrefilterEnsemble) and len(pf.members) > 1:
        first, _ = prefilter_peaks(pf.members[0], ca_p, p_spec)
        gate = early_exit_gate(first, pf_calib, calib_pos, pf_cal["threshold"])
        if gate["gate"] is not None:
            pf.gate = pf_arch_kwargs["gate"] = gate["gate"]
            pf_calib, ca_centers = prefilter_peaks(pf, ca_p, p_spec)
            pf_cal.update(prefilter_recall_at(pf_calib, calib_pos, pf_cal["threshold"], confidence))
        say(f"prefilter early exit: gate {gate['gate']}, opened by {gate['open_rate']:.3f} of calib frames; "
            f"recall {pf_cal['recall']:.4f} (lower bound {pf_cal['recall_lower_bound']:.4f}) "
            f"pass rate {pf_cal['pass_rate']:.3f}")
    n_members = len(pf.members) if isinstance(pf, PrefilterEnsemble) else 1
    pf_flops_expected = float(gated_flops(pf_flops, n_members, gate["open_rate"]))

    passing = pf_calib >= pf_cal["threshold"]
    true_idx = class_targets(calib_frames["label"], class_names)
    probs = np.zeros((len(calib_frames), len(class_names) + 1), np.float32)
    if passing.any():
        ca_h = decode_batch(list(calib_frames["jpeg"][passing]), h_spec, ca_centers[passing])
        probs[passing] = predict_images(hv, ca_h, h_spec)
    hv_cal = heavy_threshold_for_precision(probs[passing], true_idx[passing], target_precision)
    pred_idx, score = heavy_predictions(probs)
    users = calib_frames["user_id"] if "user_id" in calib_frames.columns else calib_frames["call_id"]
    agg_in = pd.DataFrame({
        "user_id": users.to_numpy(),
        "true_brand": [class_names[i - 1] if i > 0 else None for i in true_idx],
        "pred_brand": [class_names[i - 1] if ok else None for i, ok in zip(pred_idx, passing)],
        "score": score,
    })
    if "day" in calib_frames.columns:
        agg_in["day"] = calib_frames["day"].to_numpy()
    grid = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
    if hv_cal["achieved"]:
        grid.append(hv_cal["threshold"])
    agg = choose_aggregation(agg_in, target_precision, min_scores=grid)
    say(f"heavy frame threshold {hv_cal['threshold']:.4f} (precision {hv_cal['precision']:.4f}, "
        f"recall {hv_cal['recall']:.4f}); user-day rule k={agg['min_frames']} "
        f"s={agg['min_score']:.3f} precision {agg['precision']:.4f} recall {agg['recall']:.4f}")

    pos_pass = passing & (true_idx > 0)
    brand_acc = float((pred_idx[pos_pass] == true_idx[pos_pass]).mean()) if pos_pass.any() else float("nan")
    hv_flops = count_flops(hv, (3, h_spec.height, h_spec.width))
    common = {"training_dates": list(map(str, training_dates)),
              "n_train_frames": len(train_frames), "n_calib_frames": len(calib_frames)}

    pf_spec = {
        "arch": pf_arch, "arch_kwargs": pf_arch_kwargs, "input": p_spec.to_dict(),
        "class_names": ["cup"], "threshold": pf_cal["threshold"], "flops_per_frame": pf_flops,
        "training_dates": common["training_dates"],
        "metrics": {**{f"calib_{k}": v for k, v in pf_cal.items()},
                    "calib_auc": roc_auc(pf_calib, calib_pos),
                    "calib_gate": gate, "calib_flops_per_frame_expected": pf_flops_expected,
                    "train_history": pf_hist, "train_seconds": pf_train_s, "seed": seed,
                    "recipe": {"epochs": prefilter_epochs, "members": prefilter_members, **pf_opts},
                    **common},
    }
    hv_spec = {
        "arch": hv_arch, "arch_kwargs": hv_kwargs, "input": h_spec.to_dict(),
        "class_names": class_names, "threshold": hv_cal["threshold"],
        "aggregation": {"min_frames": int(agg["min_frames"]), "min_score": float(agg["min_score"])},
        "flops_per_frame": hv_flops, "training_dates": common["training_dates"],
        "metrics": {**{f"calib_frame_{k}": v for k, v in hv_cal.items()},
                    **{f"calib_userday_{k}": v for k, v in agg.items()},
                    "calib_brand_accuracy_on_passing_positives": brand_acc,
                    "train_history": hv_hist, "train_seconds": hv_train_s, "seed": seed,
                    "recipe": {"epochs": heavy_epochs, "members": heavy_members, **hv_opts}, **common},
    }
    pf_version = registry.register("prefilter", pf, _jsonable(pf_spec))
    hv_version = registry.register("heavy", hv, _jsonable(hv_spec))
    if alias:
        registry.set_alias("prefilter", alias, pf_version)
        registry.set_alias("heavy", alias, hv_version)
    total = time.perf_counter() - t_start
    say(f"registered prefilter {pf_version}, heavy {hv_version} in {total:.1f}s total")
    return {
        "prefilter_version": pf_version, "heavy_version": hv_version, "alias": alias,
        "prefilter_threshold": pf_cal["threshold"], "heavy_threshold": hv_cal["threshold"],
        "aggregation": hv_spec["aggregation"],
        "prefilter_metrics": pf_spec["metrics"], "heavy_metrics": hv_spec["metrics"],
        "flops": {"prefilter": pf_flops, "prefilter_expected": pf_flops_expected, "heavy": hv_flops},
        "seconds": {"decode": decode_s, "prefilter_train": pf_train_s,
                    "heavy_train": hv_train_s, "total": total},
    }


def _jsonable(obj):
    """Make numpy scalars / NaN JSON-safe (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
