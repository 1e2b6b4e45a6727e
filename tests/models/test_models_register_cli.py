"""`percolate models register`: a TorchScript file with a small spec becomes a registry version."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from models.registry import ModelRegistry
from workflows.cli import main
from percolate.io.store import LocalStore


class TinyClassifier(nn.Module):
    """none + 3 classes from mean colour: enough to be a real scripted model."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCOLATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERCOLATE_STORE", str(tmp_path / "store"))
    torch.manual_seed(0)
    path = tmp_path / "tea.pt"
    torch.jit.save(torch.jit.script(TinyClassifier()), str(path))
    return tmp_path, path


def test_register_torchscript_with_flags_then_alias(env, capsys):
    tmp_path, path = env
    rc = main(["models", "register", "--role", "heavy", "--file", str(path), "--input-size", "64x48",
               "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--classes", "green tea,black tea,chai",
               "--threshold", "0.7", "--min-frames", "2", "--alias", "challenger", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == "v0001"
    registry = ModelRegistry(LocalStore(tmp_path / "store"))
    loaded = registry.load("heavy", "challenger")
    assert loaded.class_names == ["green tea", "black tea", "chai"]
    assert loaded.spec["arch"] == "torchscript"
    assert loaded.spec["threshold"] == 0.7
    assert loaded.spec["aggregation"] == {"min_frames": 2, "min_score": 0.7}
    assert (loaded.input.width, loaded.input.height, loaded.input.mean) == (64, 48, (0.5, 0.5, 0.5))
    # the first production model (there is none yet) may be pointed at directly ...
    assert main(["models", "alias", "--role", "heavy", "--alias", "production", "--version", "challenger"]) == 0
    assert registry.resolve("heavy", "production") == "v0001"
    # ... afterwards production moves only through `percolate models promote` (the gates)
    assert main(["models", "register", "--role", "heavy", "--file", str(path), "--input-size", "64x48",
                 "--classes", "green tea,black tea,chai", "--alias", "production"]) == 1
    assert "percolate models promote" in capsys.readouterr().err
    assert main(["models", "alias", "--role", "heavy", "--alias", "production", "--version", "v0001"]) == 1
    assert registry.resolve("heavy", "production") == "v0001"


def test_register_reads_a_spec_file(env):
    tmp_path, path = env
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"input": {"width": 32, "height": 32}, "class_names": ["a", "b", "c"],
                                "threshold": 0.9}))
    assert main(["models", "register", "--role", "heavy", "--file", str(path), "--spec", str(spec)]) == 0
    assert ModelRegistry(LocalStore(tmp_path / "store")).spec("heavy", "v0001")["class_names"] == ["a", "b", "c"]


def test_wrong_class_count_is_a_clear_error(env, capsys):
    tmp_path, path = env
    rc = main(["models", "register", "--role", "heavy", "--file", str(path), "--input-size", "32x32",
               "--classes", "only,two"])
    assert rc == 1
    assert "outputs shape" in capsys.readouterr().err
    assert ModelRegistry(LocalStore(tmp_path / "store")).versions("heavy") == []


def test_a_pickle_is_refused(env, capsys):
    tmp_path, _ = env
    evil = tmp_path / "evil.pt"
    torch.save(TinyClassifier(), str(evil))  # a full pickled module, not TorchScript
    rc = main(["models", "register", "--role", "heavy", "--file", str(evil), "--input-size", "32x32",
               "--classes", "a,b,c"])
    assert rc == 1
    assert "not a TorchScript archive" in capsys.readouterr().err


def test_missing_input_size_is_a_clear_error(env, capsys):
    _, path = env
    assert main(["models", "register", "--role", "heavy", "--file", str(path), "--classes", "a,b,c"]) == 1
    assert "input size" in capsys.readouterr().err
