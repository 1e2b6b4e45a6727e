"""Bring your own model: TorchScript files registered with `percolate models register` run
through the real nightly DAG like the built-in models, with their own class list."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from workflows.cli import main as cli_main
from percolate.core.settings import Settings
from workflows.launch import run_nightly
from workflows.query import run_queries
from percolate.io.store import LocalStore

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.airflow, pytest.mark.spark]
DAY = "2026-06-01"
TEAS = ["green tea", "black tea", "chai"]


class ColourPrefilter(nn.Module):
    """One logit per frame: how red the frame is (a stand-in for someone's own prefilter)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] - x[:, 2]).mean(dim=(1, 2)) * 4.0 + 2.0


class TeaClassifier(nn.Module):
    """none + 3 teas from the mean colour and brightness, with fixed weights."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0],
                                               [0.0, 0.0, 2.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from synth import generate_day

    root = tmp_path_factory.mktemp("byo")
    settings = Settings(home=root / "home", store_uri=str(root / "store"))
    generate_day(LocalStore(settings.store_uri), DAY, calls=2, seed=5, min_seconds=4, max_seconds=6, workers=1)
    mp = pytest.MonkeyPatch()
    mp.setenv("PERCOLATE_HOME", str(settings.home))
    mp.setenv("PERCOLATE_STORE", settings.store_uri)
    pf, hv = root / "prefilter.pt", root / "tea.pt"
    torch.jit.save(torch.jit.script(ColourPrefilter()), str(pf))
    torch.jit.save(torch.jit.script(TeaClassifier()), str(hv))
    assert cli_main(["models", "register", "--role", "prefilter", "--file", str(pf), "--input-size", "96x54",
                     "--threshold", "0.0", "--alias", "production"]) == 0
    assert cli_main(["models", "register", "--role", "heavy", "--file", str(hv), "--input-size", "64x64",
                     "--crop", "0.6", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
                     "--classes", ",".join(TEAS), "--threshold", "0.0", "--min-frames", "1",
                     "--alias", "production"]) == 0
    yield settings
    mp.undo()


def test_registered_torchscript_models_run_through_the_nightly_dag(env):
    settings = env
    summary = json.loads(run_nightly(settings, DAY).read_text())
    assert summary["status"] == "success"
    assert (summary["prefilter_version"], summary["heavy_version"]) == ("v0001", "v0001")
    frames, daily, sampled = run_queries(settings, [
        f"SELECT label, heavy_version, prefilter_version, heavy_threshold FROM frame_predictions WHERE dt = '{DAY}'",
        f"SELECT brand, confirmed FROM user_brand_daily WHERE dt = '{DAY}'",
        f"SELECT sampled_frames, prefilter_passed FROM pipeline_runs WHERE dt = '{DAY}'",
    ])
    # threshold 0: every sampled frame reaches the heavy model and gets one of the model's own classes
    assert len(frames) == sampled[0]["sampled_frames"] == sampled[0]["prefilter_passed"] > 0
    assert {r["label"] for r in frames} <= set(TEAS)
    assert {(r["heavy_version"], r["prefilter_version"]) for r in frames} == {("v0001", "v0001")}
    assert daily and {r["brand"] for r in daily} <= set(TEAS)
    assert all(r["confirmed"] for r in daily)
