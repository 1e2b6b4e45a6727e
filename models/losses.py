"""Training losses: a focal binary loss, and the box-supervised loss of the prefilter."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from models.prefilter import PrefilterCNN


def focal_bce(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
              pos_weight: float = 1.0) -> torch.Tensor:
    """Binary focal loss: BCE scaled by (1 - p_true)^gamma, so easy frames count little and the
    rare hard ones (tiny cups, cup-like shelves) drive training. gamma=0 is weighted BCE."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_true = p * targets + (1 - p) * (1 - targets)
    weight = (1 - p_true).pow(gamma) * (1 + (pos_weight - 1) * targets)
    return (weight * bce).mean()


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


