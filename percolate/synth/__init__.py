"""Synthetic days of video calls with ground truth: fictional coffee brands, distractors,
real-footage and generated backgrounds (train / holdout splits)."""

from percolate.synth.brands import BRAND_NAMES, BRANDS, BrandStyle
from percolate.synth.generate import generate_day, plan_day
from percolate.synth.truth import frame_labels, label_at, load_truth

__all__ = ["BRAND_NAMES", "BRANDS", "BrandStyle", "generate_day", "plan_day", "load_truth", "label_at",
           "frame_labels"]
