import pytest
import torch
from torch import nn

from _models_testutil import frames_df
from models.flops import count_flops
from models.heavy import MobileNetLike
from models.prefilter import DEFAULT_INPUT as PREFILTER_INPUT
from models.prefilter import PrefilterCNN
from models.preprocess import InputSpec, decode_batch, to_tensor


def test_flops_budgets():
    # "a few MFLOPs at most" at the default input; a MobileNet-class heavy model: a few hundred
    w, h = PREFILTER_INPUT
    assert count_flops(PrefilterCNN(), (3, h, w)) <= 8e6
    assert count_flops(MobileNetLike(10), (3, 144, 256)) <= 3e8
    # hand-checked: a 1x1 conv 3->4 on 2x2 = 2*4*4*3 FLOPs, linear 5->2 = 2*2*5
    assert count_flops(nn.Conv2d(3, 4, 1, bias=False), (3, 2, 2)) == 96
    assert count_flops(nn.Linear(5, 2), (1, 5)) == 20


def test_output_shapes():
    assert PrefilterCNN()(torch.zeros(3, 3, 72, 128)).shape == (3,)
    assert MobileNetLike(7, width_mult=0.35)(torch.zeros(2, 3, 144, 256)).shape == (2, 8)


def _overfit(model, x, y, loss_fn, steps=50, lr=1e-2):
    torch.manual_seed(0)
    model = model.to(memory_format=torch.channels_last)  # much faster depthwise backward on CPU
    x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


@pytest.mark.slow
def test_prefilter_overfits_one_batch():
    torch.manual_seed(0)
    df = frames_df(8, ["red"], pos_frac=0.5, seed=1)
    x = to_tensor(decode_batch(list(df.jpeg), InputSpec(128, 72)), InputSpec(128, 72))
    y = torch.tensor(df.label.notna().to_numpy(), dtype=torch.float32)
    assert _overfit(PrefilterCNN(), x, y, nn.BCEWithLogitsLoss()) < 0.05


@pytest.mark.slow
def test_heavy_overfits_one_batch():
    torch.manual_seed(0)
    df = frames_df(8, ["red", "blue", "green"], pos_frac=0.75, seed=2)
    x = to_tensor(decode_batch(list(df.jpeg), InputSpec(256, 144)), InputSpec(256, 144))
    lookup = {"red": 1, "blue": 2, "green": 3}
    y = torch.tensor([lookup.get(lab, 0) for lab in df.label])
    assert _overfit(MobileNetLike(3, width_mult=0.35), x, y, nn.CrossEntropyLoss(), lr=3e-3) < 0.1


@pytest.mark.slow
def test_two_epochs_lower_the_loss():
    from models.fit import train_prefilter

    df = frames_df(192, ["red", "blue"], pos_frac=0.3, seed=3)
    _, hist = train_prefilter(df, epochs=2, seed=0, batch_size=32, progress=None)
    assert len(hist) == 2 and hist[1]["loss"] < hist[0]["loss"]
    assert all(h["seconds"] >= 0 for h in hist)


def test_heavy_ensemble_averages_its_members_probabilities():
    from models.heavy import HeavyEnsemble

    torch.manual_seed(0)
    ens = HeavyEnsemble(members=2, num_classes=4, width_mult=0.35).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        for m in ens.members:  # fresh heads are near uniform: make the members disagree
            m.classifier[1].bias.normal_()
        want = torch.stack([torch.softmax(m(x), 1) for m in ens.members]).mean(0)
        got = torch.softmax(ens(x), 1)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(torch.softmax(ens.members[0](x), 1), want)  # the members differ
    one = count_flops(MobileNetLike(4, width_mult=0.35), (3, 64, 64))
    assert count_flops(ens, (3, 64, 64)) == pytest.approx(2 * one, rel=0.02)
    with pytest.raises(ValueError):
        HeavyEnsemble(members=0, num_classes=4)


def test_prefilter_ensemble_averages_its_members_maps():
    from models.prefilter import PrefilterEnsemble, map_peaks

    torch.manual_seed(0)
    kwargs = {"channels": (6, 12, 16, 24, 32)}
    ens = PrefilterEnsemble(members=3, **kwargs).eval()
    x = torch.randn(2, 3, 90, 160)
    with torch.no_grad():
        for m in ens.members:  # make the members disagree
            m.head.bias.normal_()
        maps = [m.logit_map(x) for m in ens.members]
        got = ens.logit_map(x)
        assert torch.allclose(got, torch.stack(maps).mean(0), atol=1e-6)
        assert torch.allclose(ens(x), got.amax(dim=(1, 2)))
        assert not torch.allclose(maps[0], got)
    peak, where = map_peaks(got)
    assert peak.shape == (2,) and where.shape == (2, 2)
    one = count_flops(PrefilterCNN(**kwargs), (3, 90, 160))
    assert count_flops(ens, (3, 90, 160)) == pytest.approx(3 * one, rel=0.02)
    with pytest.raises(ValueError):
        PrefilterEnsemble(members=0)


def test_prefilter_ensemble_gate_stops_frames_after_the_first_member():
    from models.prefilter import PrefilterEnsemble

    torch.manual_seed(1)
    ens = PrefilterEnsemble(members=3, channels=(6, 12, 16, 24, 32)).eval()
    x = torch.randn(6, 3, 90, 160)
    with torch.no_grad():
        for m in ens.members:
            m.head.bias.normal_()
        first, full = ens.members[0].logit_map(x), ens.full_logit_map(x)
        first_peak = torch.sigmoid(first.amax(dim=(1, 2)))
        ens.gate = float(first_peak.median())  # about half the frames open it
        maps, opened = ens.gated_logit_map(x)
    assert torch.equal(opened, first_peak >= ens.gate) and 0 < int(opened.sum()) < 6
    assert torch.allclose(maps[opened], full[opened], atol=1e-5)  # opened: every member
    assert torch.equal(maps[~opened], first[~opened])  # stopped: the first member's map, under the gate
    assert (torch.sigmoid(ens(x)[~opened]) < ens.gate).all()
    gated_flops = count_flops(ens, (3, 90, 160))
    ens.gate = None
    assert gated_flops == count_flops(ens, (3, 90, 160))  # counted open: the worst case
    assert torch.allclose(ens.logit_map(x), full) and ens.gated_logit_map(x)[1].all()
    with pytest.raises(ValueError):
        PrefilterEnsemble(members=2, gate=1.5)
