"""Champion/challenger gates: every gate configured, each fails closed, the decision is all of them."""

import json

import pytest

from evaluations import DAYS, evaluation
from models.gates import Gates, decide, summarize, wilson

PRODUCT = Gates(min_precision_lower95=0.99, min_recall=0.90, max_brand_recall_drop=0.02,
                max_cost_increase=0.10, not_worse_beyond_ci=True)


def test_wilson_interval():
    lo, hi = wilson(299, 300)
    assert lo == pytest.approx(0.9814, abs=1e-3) and hi == pytest.approx(0.9994, abs=1e-3)
    assert wilson(0, 0) is None
    assert wilson(1000, 1000)[0] > 0.99  # 1000 correct of 1000: the lower bound shows >= 99%


def test_a_better_challenger_passes_every_gate():
    champion = evaluation(590, 592, 640, {"a": 0.92, "b": 0.93}, 20e6)
    challenger = evaluation(620, 620, 640, {"a": 0.97, "b": 0.97}, 21e6)
    out = decide(challenger, champion, PRODUCT)
    assert out["promote"], out
    assert [g["gate"] for g in out["gates"]] == ["precision", "recall", "brand_recall", "cost", "not_worse"]


@pytest.mark.parametrize("change, failing", [
    ({"correct": 560}, {"precision", "recall", "not_worse"}),  # 60 wrong of 620 predicted
    ({"brand_recall": {"a": 0.97, "b": 0.90}}, {"brand_recall"}),  # b lost 3 points
    ({"flops_per_frame": 23e6}, {"cost"}),  # +15%
])
def test_each_gate_refuses_on_its_own(change, failing):
    champion = evaluation(590, 592, 640, {"a": 0.92, "b": 0.93}, 20e6)
    fields = dict(correct=620, predicted=620, true=640, brand_recall={"a": 0.97, "b": 0.97}, flops=21e6)
    fields.update({"flops": change.pop("flops_per_frame")} if "flops_per_frame" in change else {})
    fields.update(change)
    out = decide(evaluation(**fields), champion, PRODUCT)
    assert not out["promote"]
    assert {g["gate"] for g in out["gates"] if not g["passed"]} == failing


def test_unset_gates_and_a_missing_champion_fail_closed():
    challenger = evaluation(620, 620, 640, {"a": 0.97}, 21e6)
    out = decide(challenger, None, Gates(min_precision_lower95=0.99, min_recall=0.9))
    failed = {g["gate"]: g["why"] for g in out["gates"] if not g["passed"]}
    assert set(failed) == {"brand_recall", "cost", "not_worse"} and "not configured" in failed["cost"]
    out = decide(challenger, None, PRODUCT)
    assert not out["promote"] and "no champion" in out["gates"][2]["why"]
    other_days = evaluation(590, 592, 640, {"a": 0.92}, 20e6, dates=["2026-11-01"])
    assert not decide(challenger, other_days, PRODUCT)["promote"]  # not the same days: no comparison


def test_a_small_evaluation_cannot_show_99_percent():
    # 100 of 100 right is 100% as a point estimate, but its lower bound is 96.3%
    out = decide(evaluation(100, 100, 105, {"a": 0.95}, 20e6), evaluation(95, 96, 105, {"a": 0.9}, 20e6), PRODUCT)
    assert [g["gate"] for g in out["gates"] if not g["passed"]] == ["precision"]


def test_gates_file_and_summary(tmp_path):
    path = tmp_path / "gates.json"
    path.write_text(json.dumps({"min_recall": 0.9}))
    assert Gates.from_file(path) == Gates(min_recall=0.9)
    path.write_text(json.dumps({"min_recal": 0.9}))
    with pytest.raises(ValueError, match="unknown gates"):
        Gates.from_file(path)
    result = {"dates": DAYS, "models": {"prefilter": {"version": "v0001"}, "heavy": {"version": "v0003"}},
              "pooled": {"user_day": {"true_user_brands": 10, "predicted_user_brands": 9, "correct": 9,
                                      "precision": 1.0, "recall": 0.9,
                                      "per_brand": {"a": {"true": 10, "recall": 0.9}, "b": {"true": 0, "recall": None}}},
                         "flops_per_sampled_frame": {"cascade": 123},
                         "frame_level": {"prefilter": {"pass_rate": 0.1}, "heavy": {"run_rate": 0.05}}}}
    s = summarize(result)
    assert s["models"] == {"prefilter": "v0001", "heavy": "v0003"} and s["brand_recall"] == {"a": 0.9}
    assert s["precision_ci"][0] < 1.0 < s["precision_ci"][1] + 1e-9 and s["flops_per_frame"] == 123
