"""Synthetic days of video calls with ground truth: fictional coffee brands, distractors,
real-footage and generated backgrounds (train / holdout splits).

For the demo, training, evaluation and tests; the pipeline itself never imports it.
"""

from synth.brands import BRAND_NAMES, BRANDS, BrandStyle
from synth.generate import generate_day, plan_day
from synth.truth import label_at, load_truth

__all__ = ["BRAND_NAMES", "BRANDS", "BrandStyle", "generate_day", "plan_day", "load_truth", "label_at"]
