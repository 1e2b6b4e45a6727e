"""PrefilterCNN: a tiny high-recall "is there a cup?" detector, and an ensemble of them.

Fully convolutional: a 1x1 head scores every cell of the feature map and the frame's logit
is the maximum (multiple-instance learning from frame labels). The arg-max cell tells the
heavy model where to look.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.layers import SeedEnsemble, conv_bn_act

DEFAULT_INPUT = (160, 90)  # width, height: a 50 px cup in a 360p frame is still ~12 px here


class PrefilterCNN(nn.Module):
    """Stem conv + depthwise-separable blocks, then a per-cell logit map, max-pooled.

    At 160x90 the output stride is 8 (20x12 map) and the receptive field ~39 px,
    matching cups of ~12-40 px. ~5.9 MFLOPs per frame with the default channels
    (3.6 at 128x72, which misses more of the smallest cups).
    """

    def __init__(self, channels: tuple[int, ...] = (8, 24, 24, 48, 64),
                 strides: tuple[int, ...] = (2, 1, 2, 1)):
        super().__init__()
        channels, strides = tuple(channels), tuple(strides)
        if len(strides) != len(channels) - 1:
            raise ValueError("need one stride per block (len(channels) - 1)")
        layers = [conv_bn_act(3, channels[0], 3, 2)]
        for cin, cout, s in zip(channels[:-1], channels[1:], strides):
            layers += [conv_bn_act(cin, cin, 3, s, groups=cin), conv_bn_act(cin, cout, 1, 1)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels[-1], 1, 1)

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, h, w) logits, one per feature-map cell."""
        return self.head(self.features(x)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_map(x).amax(dim=(1, 2))  # (N,) logits


class PrefilterEnsemble(SeedEnsemble):
    """Several PrefilterCNN of the same shape, trained from different seeds, as one prefilter.

    Its logit map is the mean of the members' maps, so it localises like one member. On
    footage unlike the training backgrounds each member fires on different things (an ear,
    a plant pot, a shelf); a cup makes them all fire, so the mean keeps cups and drops most
    of those. Three default members cost 17.6 MFLOPs a frame.

    Early exit: with a `gate` (a probability, at most the decision threshold), member 0
    scores every frame and the others run only on frames where member 0's peak reaches the
    gate; a frame below it keeps member 0's map, whose peak is then under the threshold, so
    it cannot pass. Most frames stop after one member (see `gated_logit_map`).
    """

    member_type = PrefilterCNN

    def __init__(self, members: int = 3, gate: float | None = None, **member_kwargs):
        super().__init__(members, **member_kwargs)
        if gate is not None and not 0.0 < gate < 1.0:
            raise ValueError(f"gate is a probability in (0, 1), got {gate}")
        self.gate = gate

    def full_logit_map(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of every member's map, gate or not."""
        return torch.stack([m.logit_map(x) for m in self.members]).mean(dim=0)

    def gated_logit_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, h, w) maps and (N,) bool: which frames opened the gate (ran every member)."""
        if self.gate is None or len(self.members) == 1:
            return self.full_logit_map(x), torch.ones(x.shape[0], dtype=torch.bool)
        first = self.members[0].logit_map(x)
        opened = torch.sigmoid(first.amax(dim=(1, 2))) >= self.gate  # as scores are compared
        maps = first.clone()
        if opened.any():
            rest = x[opened]
            maps[opened] = (first[opened] + sum(m.logit_map(rest) for m in self.members[1:])) / len(self.members)
        return maps, opened

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.gated_logit_map(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_map(x).amax(dim=(1, 2))


def gated_flops(full_flops: float, members: int, opened) -> np.ndarray:
    """FLOPs per frame of an early-exit ensemble whose every member costs `full_flops` in all:
    the first member's share, plus the others' where the gate opened (`opened`: a bool per
    frame, or the share of frames that open it)."""
    return full_flops / members * (1 + (members - 1) * np.asarray(opened, dtype=np.float64))


def map_peaks(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, h, w) logit maps -> (N,) peak logits and (N, 2) peak centres (x, y) in [0, 1]."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1)
    peak, idx = flat.max(dim=1)
    ys, xs = idx // w, idx % w
    centers = torch.stack([(xs.float() + 0.5) / w, (ys.float() + 0.5) / h], dim=1)
    return peak, centers
