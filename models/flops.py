"""FLOPs of a model's Conv2d/Linear layers (2 x multiply-adds), via forward hooks."""

from __future__ import annotations

import torch
from torch import nn


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs for ONE input of shape (C, H, W) (a leading batch dim of 1 is accepted).

    A model with an early-exit `gate` (PrefilterEnsemble) is counted with the gate open:
    its worst case, every member on the frame.
    """
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    total = 0

    def conv_hook(m: nn.Conv2d, inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += 2 * out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += 2 * out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training, gate = model.training, getattr(model, "gate", None)
    if not isinstance(gate, float):  # only a probability gate is an early exit
        gate = None
    model.eval()
    if gate is not None:
        model.gate = None
    try:
        with torch.inference_mode():
            model(torch.zeros(shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        if gate is not None:
            model.gate = gate
    return int(total // shape[0])
