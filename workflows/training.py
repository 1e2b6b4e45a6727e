"""`percolate train`: how the default models are made, from nothing.

Generates the plan's days (seeded), samples them with the pipeline's own sampling job,
labels the frames from the generator's truth, then runs the four steps of `models`: fit,
calibrate, register, promote; `ship` also exports the result to `models/shipped/`.
The same commit and command give the same weights and thresholds on the same machine
(see `deterministic_torch`); docs/model-card.md says what can still vary.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

from percolate.core.layout import FRAMES, TRAINING, manifest_key, training_report_path
from percolate.core.settings import Settings
from percolate.io.stage import open_stage
from percolate.io.store import ObjectStore, open_store
from workflows.progress import EpochBars, bar, generation_bar, say

TRAIN_THREADS = 2  # torch threads while training: fixed, so results do not depend on the machine's cores


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
    prefilter_epochs: int = 30
    heavy_epochs: int = 12
    # heavy models from consecutive seeds averaged into one (HeavyEnsemble): one model's
    # confident mistakes on unseen backgrounds are seldom another's
    heavy_members: int = 2
    # prefilters from consecutive seeds whose maps are averaged (PrefilterEnsemble): on unseen
    # backgrounds each fires on different look-alikes, and only a cup makes all of them fire
    prefilter_members: int = 3
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


def ensure_generated(store: ObjectStore, date: str, calls: int, seed: int, backgrounds: str,
                     min_seconds: float, max_seconds: float, cup_share: float | None = None,
                     distractor_share: float | None = None) -> None:
    """Generate the day unless its manifest (written last) already exists (shares: realistic by default)."""
    from synth import generate_day
    from synth.generate import CUP_SHARE, DISTRACTOR_SHARE

    if store.exists(manifest_key(date)):
        return
    with generation_bar(date, calls) as progress:
        generate_day(store, date, calls=calls, seed=seed, backgrounds=backgrounds, min_seconds=min_seconds,
                     max_seconds=max_seconds, progress=progress,
                     cup_share=CUP_SHARE if cup_share is None else cup_share,
                     distractor_share=DISTRACTOR_SHARE if distractor_share is None else distractor_share)


def labelled_frames(settings: Settings, store: ObjectStore, date: str) -> pd.DataFrame:
    """Sample a generated day with the pipeline's sampling job, then label frames from truth,
    with the cups' boxes for the prefilter (see object_boxes_at)."""
    from synth import label_at, load_truth
    from workflows.launch import spark_submit

    spark_submit(settings, "sample_frames", ["--date", date, "--run-id", f"training-{date}", "--output-stage",
                                             TRAINING], log_name=f"training-sample-{date}")
    frames = open_stage(settings, f"training-{date}").read_pandas(
        TRAINING, date, FRAMES, ["call_id", "user_id", "frame_index", "ts_ms", "jpeg"])
    truth = load_truth(store, date)
    calls = {c["call_id"]: c for c in truth["calls"]}
    frames["label"] = [label_at(calls[c], t / 1000.0) for c, t in zip(frames["call_id"], frames["ts_ms"])]
    frames["background"] = [calls[c]["background"] for c in frames["call_id"]]
    frames["date"] = date
    frames = frames.sort_values(["call_id", "frame_index"]).reset_index(drop=True)
    frames["boxes"] = object_boxes_at(truth, frames)
    check_training_frames(settings, frames, date, list(truth["classes"]))
    return frames


def object_boxes_at(truth: dict, frames: pd.DataFrame) -> list[list[list[float]]]:
    """Per frame: the boxes of the brand cups in view, from the renderer's tracks."""
    from synth.scene import FPS, object_boxes

    calls = {c["call_id"]: c for c in truth["calls"]}
    boxes: list[list[list[float]]] = [[] for _ in range(len(frames))]
    ts = frames["ts_ms"].to_numpy()
    for call_id, rows in frames.groupby("call_id", sort=False).indices.items():
        call = calls[call_id]
        if not call.get("cups"):
            continue
        indexes = [round(t * FPS / 1000) for t in ts[rows]]
        for k, found in zip(rows, object_boxes(call, truth["seed"], indexes, ("cup",))):
            boxes[k] = [list(b) for b in found]
    return boxes


def check_training_frames(settings: Settings, frames: pd.DataFrame, date: str, classes: list[str]) -> None:
    """Training data passes its expectation suite (labels known, sane label share, no duplicates)."""
    from percolate.handover import check

    data = frames.drop(columns=["jpeg", "boxes"], errors="ignore").assign(jpeg_bytes=frames["jpeg"].map(len))
    check(settings, "training_data", date, f"training-{date}", data=data, class_names=classes)


def deterministic_torch() -> None:
    """Fixed thread counts and torch's deterministic algorithms: the same data and seeds give
    the same weights on this machine."""
    import torch

    torch.set_num_threads(TRAIN_THREADS)
    torch.use_deterministic_algorithms(True)


def train(settings: Settings, plan: TrainingPlan = TrainingPlan(), alias: str | None = "challenger",
          ship: bool = False, command: str = "percolate train") -> dict:
    """Generate (if missing) and sample the plan's days; fit, calibrate and register both
    models; point `alias` at them (none: leave every alias); with `ship`, export them as the
    shipped models. `command` is recorded in the specs as what reproduces them.

    The generated days live under `settings.synthetic()` (their own store prefix, stage and
    database): their dates are real calendar dates and must never meet the nightly's."""
    import time

    from models.calibrate import calibrate_models
    from models.fit import fit_models
    from models.promote import promote
    from models.register import model_specs, register_models
    from percolate.io.registry import open_registry
    from percolate.core.provenance import code_version
    from synth import BRAND_NAMES

    started = time.perf_counter()
    data = settings.synthetic()
    store = open_store(data.store_uri, data.s3_endpoint_url)
    dates = plan.train_dates + plan.calib_dates
    for date in dates:
        shape = plan.shape(date)
        ensure_generated(store, date, shape.calls, plan.day_seed(date), "train", shape.min_seconds,
                         shape.max_seconds, shape.cup_share, shape.distractor_share)
    days = {}
    with bar(len(dates), "sampling training days", "day") as progress:
        for date in dates:
            progress.set_postfix_str(date)
            days[date] = labelled_frames(data, store, date)
            progress.update(1)
    train_frames = pd.concat([days[d] for d in plan.train_dates], ignore_index=True)
    calib_frames = pd.concat([days[d] for d in plan.calib_dates], ignore_index=True)
    calib_frames["day"] = calib_frames["date"]  # user-days: the same user on two days is two user-days
    del days
    say(f"training on {len(train_frames)} frames ({train_frames['label'].notna().sum()} with a cup), "
        f"calibrating on {len(calib_frames)}")
    deterministic_torch()
    options = {} if plan.recolour is None else {"recolour": plan.recolour}
    t_fit = time.perf_counter()
    epochs = EpochBars()
    prefilter, heavy = fit_models(
        train_frames, list(BRAND_NAMES), seed=plan.seed, prefilter_epochs=plan.prefilter_epochs,
        heavy_epochs=plan.heavy_epochs, heavy_members=plan.heavy_members, prefilter_members=plan.prefilter_members,
        prefilter_options=options, heavy_options=options, progress=epochs)
    epochs.close()
    fit_s = time.perf_counter() - t_fit
    calibration = calibrate_models(prefilter, heavy, calib_frames, list(BRAND_NAMES), progress=say)
    training = {"command": command, "code_version": code_version(), "seed": plan.seed, "dates": list(dates),
                "plan": asdict(plan), "n_train_frames": len(train_frames), "n_calib_frames": len(calib_frames)}
    specs = model_specs(prefilter, heavy, calibration, list(BRAND_NAMES), training=training)
    registry = open_registry(settings)
    versions = register_models(registry, prefilter, heavy, specs)
    if alias:
        promote(registry, versions, alias, reason=f"trained by {command}")
    summary = {"versions": versions, "alias": alias, "training": training,
               "prefilter": calibration["prefilter"], "heavy": calibration["heavy"],
               "seconds": {"fit": round(fit_s, 1), "prefilter_fit": round(prefilter.seconds, 1),
                           "heavy_fit": round(heavy.seconds, 1), "total": round(time.perf_counter() - started, 1)}}
    if ship:
        from models.shipped import ship as export

        summary["shipped"] = str(export(registry, versions))
    say(f"registered prefilter {versions['prefilter']}, heavy {versions['heavy']}"
        + (f" as {alias}" if alias else "") + (f"; shipped to {summary['shipped']}" if ship else ""))
    path = training_report_path(settings.reports_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str))
    return summary
