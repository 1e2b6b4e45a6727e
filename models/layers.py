"""Building blocks shared by the architectures."""

from __future__ import annotations

from torch import nn


def conv_bn_act(cin: int, cout: int, k: int, stride: int, groups: int = 1,
                act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Conv (same padding, no bias) -> BatchNorm -> activation."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        act(inplace=True),
    )
