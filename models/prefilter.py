"""PrefilterCNN: a tiny high-recall "is there a cup?" detector, and an ensemble of them.

Fully convolutional: a 1x1 head scores every cell of the feature map and the frame's logit
is the maximum (multiple-instance learning from frame labels). The arg-max cell tells the
heavy model where to look.
"""

from __future__ import annotations

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
    of those. FLOPs add up: three default members cost 17.6 MFLOPs a frame.
    """

    member_type = PrefilterCNN

    def __init__(self, members: int = 3, **member_kwargs):
        super().__init__(members, **member_kwargs)

    def logit_map(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.logit_map(x) for m in self.members]).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_map(x).amax(dim=(1, 2))


def map_peaks(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, h, w) logit maps -> (N,) peak logits and (N, 2) peak centres (x, y) in [0, 1]."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1)
    peak, idx = flat.max(dim=1)
    ys, xs = idx // w, idx % w
    centers = torch.stack([(xs.float() + 0.5) / w, (ys.float() + 0.5) / h], dim=1)
    return peak, centers
