"""MobileNetLike: a MobileNetV2-style classifier (none + C classes), and an ensemble of them."""

from __future__ import annotations

import torch
from torch import nn

from models.layers import SeedEnsemble, conv_bn_act

DEFAULT_INPUT = (128, 128)  # width, height of the crop the heavy model sees
DEFAULT_CROP = 0.5  # crop side as a fraction of frame height, centred on the prefilter's peak

# (expansion t, channels c, repeats n, first stride s): a trimmed MobileNetV2 table.
DEFAULT_CFG: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 2, 2),
    (6, 64, 2, 2),
    (6, 96, 1, 1),
    (6, 160, 2, 2),
)


def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
    return conv_bn_act(cin, cout, k, stride, groups, act=nn.ReLU6)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


class MobileNetLike(nn.Module):
    """MobileNetV2-style network; outputs num_classes + 1 logits (index 0 = none).

    Head: global average (+ max, pool="avgmax") pooling, dropout, linear.
    """

    def __init__(self, num_classes: int, width_mult: float = 0.5, last_channels: int = 256,
                 cfg: tuple | list | None = None, dropout: float = 0.1, pool: str = "avgmax"):
        super().__init__()
        if pool not in ("avg", "avgmax"):
            raise ValueError("pool must be 'avg' or 'avgmax'")
        self.pool = pool
        cfg = [tuple(c) for c in (cfg or DEFAULT_CFG)]
        cin = _make_divisible(32 * width_mult)
        layers: list[nn.Module] = [_conv_bn_relu6(3, cin, 3, 2)]
        for t, c, n, s in cfg:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        last = _make_divisible(last_channels * max(1.0, width_mult))
        layers.append(_conv_bn_relu6(cin, last, 1, 1))
        self.features = nn.Sequential(*layers)
        head_in = last * (2 if pool == "avgmax" else 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_in, num_classes + 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = f.mean(dim=(2, 3))
        if self.pool == "avgmax":  # max pooling keeps small objects (cups) visible
            pooled = torch.cat([pooled, f.amax(dim=(2, 3))], dim=1)
        return self.classifier(pooled)


class HeavyEnsemble(SeedEnsemble):
    """Several MobileNetLike of the same shape, trained from different seeds, as one model.

    Outputs log(mean of the members' softmax): a softmax of it gives the mean probabilities,
    so it is a drop-in heavy model. Members disagree most on inputs unlike their training
    data, so averaging lowers confident mistakes there.
    """

    member_type = MobileNetLike

    def __init__(self, members: int = 2, **member_kwargs):
        super().__init__(members, **member_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=1) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12))
