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
