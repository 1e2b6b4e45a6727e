"""Building blocks shared by the architectures."""

from __future__ import annotations

import copy

from torch import nn


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """A copy of `module` for inference, with batch norm folded into the convolutions.

    Each Conv2d -> BatchNorm2d pair of an `nn.Sequential` becomes one convolution (the
    normalisation moves into its weights and bias; the BatchNorm is replaced by an
    `nn.Identity`). `module` itself is left as it is: training and the registry keep its state
    dict. Outputs move by float rounding only (at most 5.4e-7 on the shipped models), for
    about 20% less CPU a frame in the prefilter and 35-40% in the heavy model
    (`models.predictor`, where the one inference path calls this; docs/tuning.md).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(module).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and type(seq[i + 1]) is nn.BatchNorm2d and seq[i + 1].track_running_stats:
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    return folded


def conv_bn_act(cin: int, cout: int, k: int, stride: int, groups: int = 1,
                act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Conv (same padding, no bias) -> BatchNorm -> activation."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        act(inplace=True),
    )


class SeedEnsemble(nn.Module):
    """Base of several models of one architecture (`member_type`), trained from different
    seeds, combined by the subclass's forward. State-dict keys are members.<i>.<...>."""

    member_type: type[nn.Module]

    def __init__(self, members: int, **member_kwargs):
        super().__init__()
        if members < 1:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(self.member_type(**member_kwargs) for _ in range(members))

    @classmethod
    def from_members(cls, models: list[nn.Module], **member_kwargs):
        """The ensemble of trained models built with `member_kwargs`, in eval mode."""
        ens = cls(members=len(models), **member_kwargs)
        for slot, model in zip(ens.members, models):
            slot.load_state_dict(model.state_dict())
        return ens.eval()
