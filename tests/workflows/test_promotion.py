"""`percolate models promote|rollback|history`: production moves through the gates, every move is
recorded, a rollback walks back one step."""

import json
from pathlib import Path

import pytest
import torch

from evaluations import evaluation
from models.heavy import MobileNetLike
from models.prefilter import PrefilterCNN
from models.preprocess import InputSpec
from models.registry import ModelRegistry
from percolate.io.store import LocalStore
from workflows.cli import main



@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCOLATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERCOLATE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("PERCOLATE_ACTOR", "test-suite")
    monkeypatch.delenv("PERCOLATE_GATES", raising=False)
    registry = ModelRegistry(LocalStore(tmp_path / "store"))
    torch.manual_seed(0)
    for _ in range(3):  # v0001 production, v0002 a good challenger, v0003 a bad one
        registry.register("prefilter", PrefilterCNN(), {"arch": "prefilter_cnn", "input": InputSpec(128, 72),
                                                        "class_names": ["cup"], "threshold": 0.5})
        registry.register("heavy", MobileNetLike(num_classes=2, width_mult=0.35), {
            "arch": "mobilenet_like", "arch_kwargs": {"num_classes": 2, "width_mult": 0.35},
            "input": InputSpec(64, 64), "class_names": ["a", "b"], "threshold": 0.5})
    for role in ("prefilter", "heavy"):
        registry.set_alias(role, "production", "v0001", reason="first models")
    pair = lambda v: {"prefilter": v, "heavy": v}  # noqa: E731
    registry.record_evaluation(evaluation(590, 592, 640, {"a": 0.92, "b": 0.93}, pair=pair("v0001")))
    registry.record_evaluation(evaluation(620, 620, 640, {"a": 0.97, "b": 0.97}, pair=pair("v0002")))
    registry.record_evaluation(evaluation(600, 640, 640, {"a": 0.95, "b": 0.92}, pair=pair("v0003")))  # 40 wrong
    return registry


def production(registry) -> dict:
    return {role: registry.resolve(role, "production") for role in ("prefilter", "heavy")}


def test_a_challenger_that_passes_the_gates_is_promoted(registry, capsys):
    assert main(["models", "promote", "--prefilter", "v0002", "--heavy", "v0002", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["promoted"] and not out["forced"] and out["decision"]["why"] == "every gate passed"
    assert production(registry) == {"prefilter": "v0002", "heavy": "v0002"}
    last = registry.alias_history("heavy", "production")[-1]
    assert (last["from"], last["to"], last["by"], last["forced"]) == ("v0001", "v0002", "test-suite", False)
    assert "gates passed" in last["reason"]
    page = Path(out["report"]).read_text()  # the decision, for people: gates and both models side by side
    assert "PROMOTED" in page and "<img src=\"data:image/png;base64," in page and "user-day precision" in page
    assert json.loads(Path(out["report"]).with_suffix(".json").read_text())["promoted"]


def test_a_failing_challenger_is_refused_and_production_stays(registry, capsys):
    assert main(["models", "promote", "--prefilter", "v0003", "--heavy", "v0003"]) == 3
    text = capsys.readouterr().out
    assert text.startswith("refused") and "FAIL  precision" in text and "FAIL  not_worse" in text
    assert production(registry) == {"prefilter": "v0001", "heavy": "v0001"}
    assert len(registry.alias_history()) == 2  # only the first models' moves
    page = Path(text.split("report: ")[1].strip()).read_text()
    assert "REFUSED" in page and "FAIL" in page


def test_force_needs_a_reason_and_is_recorded(registry, capsys):
    assert main(["models", "promote", "--prefilter", "v0003", "--heavy", "v0003", "--force"]) == 1
    assert "--reason" in capsys.readouterr().err
    assert main(["models", "promote", "--prefilter", "v0003", "--heavy", "v0003", "--force",
                 "--reason", "the evaluation days are broken, see ticket 42"]) == 0
    assert production(registry) == {"prefilter": "v0003", "heavy": "v0003"}
    last = registry.alias_history("prefilter", "production")[-1]
    assert last["forced"] and "ticket 42" in last["reason"] and "failed: precision" in last["reason"]


def test_no_evaluation_or_other_gates_refuse(registry, tmp_path, capsys):
    gates = tmp_path / "lenient.json"
    gates.write_text(json.dumps({"min_precision_lower95": 0.9, "min_recall": 0.9}))  # three gates unset
    assert main(["models", "promote", "--prefilter", "v0002", "--heavy", "v0002", "--gates", str(gates)]) == 3
    assert "not configured" in capsys.readouterr().out
    assert main(["models", "promote", "--prefilter", "v0002", "--heavy", "v0003"]) == 3  # this pair: no evaluation
    assert "no recorded evaluation" in capsys.readouterr().out


def test_rollback_walks_back_one_step_at_a_time(registry, capsys):
    assert main(["models", "promote", "--prefilter", "v0002", "--heavy", "v0002"]) == 0
    assert main(["models", "promote", "--prefilter", "v0003", "--heavy", "v0003", "--force", "--reason", "x"]) == 0
    for expected in ("v0002", "v0001"):
        assert main(["models", "rollback", "--role", "heavy", "--reason", "drift on Monday"]) == 0
        assert registry.resolve("heavy", "production") == expected
    assert main(["models", "rollback", "--role", "heavy"]) == 1
    assert "no earlier version" in capsys.readouterr().err
    assert registry.resolve("prefilter", "production") == "v0003"  # a rollback is per role
    assert main(["models", "history", "--role", "heavy", "--json"]) == 0
    moves = json.loads(capsys.readouterr().out)
    assert [(m["from"], m["to"], m["rollback"]) for m in moves] == [
        (None, "v0001", False), ("v0001", "v0002", False), ("v0002", "v0003", False),
        ("v0003", "v0002", True), ("v0002", "v0001", True)]
