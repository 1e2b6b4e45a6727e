"""`percolate train`: labelled frames from generated days, sampled by the pipeline's own job."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pandas as pd

from percolate.config import Settings
from percolate.layout import manifest_key, stage_path
from percolate.storage import ObjectStore, open_store


@dataclass(frozen=True)
class TrainingPlan:
    """Which generated days train the models and which calibrate their thresholds.

    Both use the training backgrounds (evaluation days use the held-out ones). Training
    days show more cups than real days (`cup_share`) so every brand has examples, and
    more distractors (`distractor_share`) so the models meet look-alikes often; the
    prefilter's recall bound needs a few hundred positive calibration frames too.
    Calibration days have longer calls, so cups and look-alikes stay on screen for as
    long as on a real day: the user-day rule is chosen on realistic streaks of frames.
    """

    train_dates: tuple[str, ...] = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04")
    calib_dates: tuple[str, ...] = ("2026-01-05",)
    # many short calls: more distinct cup episodes (scenes, brands, sizes) per video-second
    calls_per_day: int = 200
    seed: int = 7
    min_seconds: float = 4.0
    max_seconds: float = 7.0
    cup_share: float = 0.8
    distractor_share: float = 0.5
    calib_calls_per_day: int = 120
    calib_min_seconds: float = 8.0
    calib_max_seconds: float = 30.0
    prefilter_epochs: int | None = None
    heavy_epochs: int | None = None


def log(msg: str) -> None:
    print(f"percolate: {msg}", file=sys.stderr, flush=True)


def ensure_generated(store: ObjectStore, date: str, calls: int, seed: int, backgrounds: str,
                     min_seconds: float, max_seconds: float, cup_share: float | None = None,
                     distractor_share: float | None = None) -> None:
    """Generate the day unless its manifest (written last) already exists (shares: realistic by default)."""
    from percolate.synth import generate_day
    from percolate.synth.generate import CUP_SHARE, DISTRACTOR_SHARE

    cup_share = CUP_SHARE if cup_share is None else cup_share
    distractor_share = DISTRACTOR_SHARE if distractor_share is None else distractor_share

    if store.exists(manifest_key(date)):
        return
    log(f"generating {calls} calls for {date} (seed {seed}, {backgrounds} backgrounds)")
    generate_day(store, date, calls=calls, seed=seed, backgrounds=backgrounds,
                 min_seconds=min_seconds, max_seconds=max_seconds, cup_share=cup_share,
                 distractor_share=distractor_share)


def labelled_frames(settings: Settings, store: ObjectStore, date: str) -> pd.DataFrame:
    """Sample a generated day with the pipeline's sampling job, then label frames from truth."""
    from percolate.orchestration import spark_submit
    from percolate.synth import label_at, load_truth

    out = stage_path(settings.stage_dir, "training", date)
    log(f"sampling training frames for {date}")
    spark_submit(settings, "sample_frames",
                 ["--date", date, "--run-id", f"training-{date}", "--output-stage", "training"],
                 log_name=f"training-sample-{date}")
    frames = pd.read_parquet(f"{out}/frames", columns=["call_id", "user_id", "frame_index", "ts_ms", "jpeg"])
    truth = load_truth(store, date)
    calls = {c["call_id"]: c for c in truth["calls"]}
    frames["label"] = [label_at(calls[c], t / 1000.0) for c, t in zip(frames["call_id"], frames["ts_ms"])]
    frames["background"] = [calls[c]["background"] for c in frames["call_id"]]
    frames["date"] = date
    frames = frames.sort_values(["call_id", "frame_index"]).reset_index(drop=True)
    check_training_frames(settings, frames, date, list(truth["classes"]))
    return frames


def check_training_frames(settings: Settings, frames: pd.DataFrame, date: str, classes: list[str]) -> None:
    """Training data passes its expectation suite (labels known, sane label share, no duplicates)."""
    from percolate.validation import check

    data = frames.drop(columns=["jpeg"]).assign(jpeg_bytes=frames["jpeg"].map(len))
    check(settings, "training_data", date, f"training-{date}", data=data, class_names=classes)


def train(settings: Settings, plan: TrainingPlan = TrainingPlan(), alias: str = "production") -> dict:
    """Generate (if missing) and sample the plan's days, train both models, register them."""
    import torch

    from models.registry import ModelRegistry
    from models.train import fit_and_register
    from percolate.synth import BRAND_NAMES

    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    for i, date in enumerate(plan.train_dates + plan.calib_dates):
        if date in plan.calib_dates:
            shape = (plan.calib_calls_per_day, plan.calib_min_seconds, plan.calib_max_seconds)
        else:
            shape = (plan.calls_per_day, plan.min_seconds, plan.max_seconds)
        ensure_generated(store, date, shape[0], plan.seed + i, "train", shape[1], shape[2], plan.cup_share,
                         plan.distractor_share)
    train_frames = pd.concat([labelled_frames(settings, store, d) for d in plan.train_dates], ignore_index=True)
    calib_frames = pd.concat([labelled_frames(settings, store, d) for d in plan.calib_dates], ignore_index=True)
    log(f"training on {len(train_frames)} frames ({train_frames['label'].notna().sum()} with a cup), "
        f"calibrating on {len(calib_frames)}")
    torch.set_num_threads(2)  # training owns the machine; Spark is not running now
    kwargs = {}
    if plan.prefilter_epochs:
        kwargs["prefilter_epochs"] = plan.prefilter_epochs
    if plan.heavy_epochs:
        kwargs["heavy_epochs"] = plan.heavy_epochs
    summary = fit_and_register(
        train_frames, calib_frames, list(BRAND_NAMES), ModelRegistry(store),
        training_dates=list(plan.train_dates + plan.calib_dates), seed=plan.seed, alias=alias,
        progress=log, **kwargs,
    )
    path = settings.reports_dir / "training" / "last_training.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str))
    return summary
