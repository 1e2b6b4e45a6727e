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
class DayShape:
    """How a generated day looks: its calls, their lengths, and how many show cups and distractors."""

    calls: int
    min_seconds: float
    max_seconds: float
    cup_share: float
    distractor_share: float


@dataclass(frozen=True)
class TrainingPlan:
    """Which generated days train the models and which calibrate their thresholds.

    All use the training backgrounds (evaluation days use the held-out ones). Training
    days are many short calls, most with a cup (`train_shape`): more distinct cup
    episodes (scenes, brands, sizes) and look-alikes per video-second. The calibration
    days give the prefilter's recall bound a few thousand positive frames; the last one
    is shaped like a real day (long calls, realistic streaks of cups and look-alikes)
    so the user-day rule is chosen on the streaks it will meet.
    """

    train_dates: tuple[str, ...] = tuple(f"2026-01-{d:02d}" for d in range(1, 9))
    calib_dates: tuple[str, ...] = ("2026-01-09", "2026-01-10")
    train_shape: DayShape = DayShape(200, 4.0, 7.0, cup_share=0.8, distractor_share=0.5)
    calib_shapes: tuple[DayShape, ...] = (DayShape(120, 8.0, 30.0, cup_share=0.8, distractor_share=0.5),
                                          DayShape(60, 20.0, 120.0, cup_share=0.5, distractor_share=0.5))
    seed: int = 7
    # distractors the prefilter is trained to pass (empty: none); see models.train.prefilter_targets
    lookalikes: tuple[str, ...] = ()
    prefilter_epochs: int | None = None
    heavy_epochs: int | None = None
    # heavy models from consecutive seeds averaged into one (HeavyEnsemble): one model's
    # confident mistakes on unseen backgrounds are seldom another's
    heavy_members: int = 2
    # prefilters from consecutive seeds whose maps are averaged (PrefilterEnsemble): on unseen
    # backgrounds each fires on different look-alikes, and only a cup makes all of them fire
    prefilter_members: int = 3
    prefilter_channels: tuple[int, ...] | None = None  # PrefilterCNN's
    # share of negatives both models see in other colours (None: the recipes' default)
    recolour: float | None = None

    def __post_init__(self):
        if len(self.calib_shapes) != len(self.calib_dates):
            raise ValueError("need one calibration DayShape per calibration date")

    def shape(self, date: str) -> DayShape:
        if date in self.calib_dates:
            return self.calib_shapes[self.calib_dates.index(date)]
        return self.train_shape

    def day_seed(self, date: str) -> int:
        """A day's generator seed: from the plan's seed and the date, not the date's place in the plan."""
        return self.seed * 100_000_000 + int(date.replace("-", ""))


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


def labelled_frames(settings: Settings, store: ObjectStore, date: str,
                    lookalikes: tuple[str, ...] = ()) -> pd.DataFrame:
    """Sample a generated day with the pipeline's sampling job, then label frames from truth,
    with object boxes and look-alike flags for the prefilter (see object_boxes_at)."""
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
    frames["boxes"], frames["lookalike"] = object_boxes_at(truth, frames, lookalikes)
    check_training_frames(settings, frames, date, list(truth["classes"]))
    return frames


def object_boxes_at(truth: dict, frames: pd.DataFrame,
                    lookalikes: tuple[str, ...]) -> tuple[list[list[list[float]]], list[bool]]:
    """Per frame: the boxes of brand cups and look-alike distractors in view (from the
    renderer's tracks), and whether a look-alike is fully in view (its truth interval)."""
    from percolate.synth.scene import FPS, object_boxes
    from percolate.synth.truth import distractors_at

    calls = {c["call_id"]: c for c in truth["calls"]}
    boxes: list[list[list[float]]] = [[] for _ in range(len(frames))]
    ts = frames["ts_ms"].to_numpy()
    for call_id, rows in frames.groupby("call_id", sort=False).indices.items():
        call = calls[call_id]
        if not call.get("cups") and not any(d["kind"] in lookalikes for d in call.get("distractors", ())):
            continue
        indexes = [round(t * FPS / 1000) for t in ts[rows]]
        for k, found in zip(rows, object_boxes(call, truth["seed"], indexes, ("cup",) + tuple(lookalikes))):
            boxes[k] = [list(b) for b in found]
    flags = [any(k in lookalikes for k in distractors_at(calls[c], t / 1000.0))
             for c, t in zip(frames["call_id"], ts)]
    return boxes, flags


def check_training_frames(settings: Settings, frames: pd.DataFrame, date: str, classes: list[str]) -> None:
    """Training data passes its expectation suite (labels known, sane label share, no duplicates)."""
    from percolate.validation import check

    data = frames.drop(columns=["jpeg", "boxes", "lookalike"], errors="ignore")
    data = data.assign(jpeg_bytes=frames["jpeg"].map(len))
    check(settings, "training_data", date, f"training-{date}", data=data, class_names=classes)


def train(settings: Settings, plan: TrainingPlan = TrainingPlan(), alias: str = "production") -> dict:
    """Generate (if missing) and sample the plan's days, train both models, register them."""
    import torch

    from models.registry import ModelRegistry
    from models.train import fit_and_register
    from percolate.synth import BRAND_NAMES

    store = open_store(settings.store_uri, settings.s3_endpoint_url)
    for date in plan.train_dates + plan.calib_dates:
        shape = plan.shape(date)
        ensure_generated(store, date, shape.calls, plan.day_seed(date), "train", shape.min_seconds, shape.max_seconds,
                         shape.cup_share, shape.distractor_share)
    train_frames = pd.concat([labelled_frames(settings, store, d, plan.lookalikes) for d in plan.train_dates],
                             ignore_index=True)
    calib_frames = pd.concat([labelled_frames(settings, store, d, plan.lookalikes) for d in plan.calib_dates],
                             ignore_index=True)
    calib_frames["day"] = calib_frames["date"]  # user-days: the same user on two days is two user-days
    log(f"training on {len(train_frames)} frames ({train_frames['label'].notna().sum()} with a cup), "
        f"calibrating on {len(calib_frames)}")
    torch.set_num_threads(2)  # training owns the machine; Spark is not running now
    kwargs = {}
    if plan.prefilter_epochs:
        kwargs["prefilter_epochs"] = plan.prefilter_epochs
    if plan.heavy_epochs:
        kwargs["heavy_epochs"] = plan.heavy_epochs
    if plan.recolour is not None:
        kwargs["prefilter_options"] = kwargs["heavy_options"] = {"recolour": plan.recolour}
    summary = fit_and_register(
        train_frames, calib_frames, list(BRAND_NAMES), ModelRegistry(store),
        training_dates=list(plan.train_dates + plan.calib_dates), seed=plan.seed, alias=alias,
        heavy_members=plan.heavy_members, prefilter_members=plan.prefilter_members,
        prefilter_channels=plan.prefilter_channels,
        progress=log, **kwargs,
    )
    path = settings.reports_dir / "training" / "last_training.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str))
    return summary
