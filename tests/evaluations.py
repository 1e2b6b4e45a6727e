"""A recorded evaluation (`models.gates.summarize`'s shape) from its counts, for the gates' tests."""

from models.gates import wilson

DAYS = ["2026-12-01", "2026-12-02"]


def evaluation(correct: int, predicted: int, true: int, brand_recall: dict, flops: float = 20e6, dates=DAYS,
               pair: dict | None = None) -> dict:
    return {"dates": list(dates), "models": pair or {"prefilter": "v0002", "heavy": "v0002"},
            "true_user_brands": true, "predicted_user_brands": predicted, "correct": correct,
            "precision": correct / predicted, "recall": correct / true,
            "precision_ci": list(wilson(correct, predicted)), "recall_ci": list(wilson(correct, true)),
            "brand_recall": brand_recall, "flops_per_frame": flops}
