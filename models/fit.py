"""Fitting the prefilter and heavy models from labelled frames (the first step of training;
then `models.calibrate`, `models.register`, `models.promote`).

`frames` is a pandas DataFrame with columns jpeg (bytes, 640x360 JPEG), label (class
name or None), call_id, ts_ms, background, and optionally boxes (the cups' boxes, from
the renderer). JPEGs are decoded once per model resolution
(models.preprocess.decode_batch) and augmented as uint8 arrays. Seeds are fixed;
torch's thread count is the caller's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from models.augment import augment, recolour
from models.heavy import DEFAULT_CROP as HEAVY_CROP
from models.heavy import DEFAULT_INPUT as HEAVY_INPUT
from models.heavy import HeavyEnsemble, MobileNetLike
from models.losses import box_mil_loss, focal_bce
from models.predictor import Predictor
from models.prefilter import DEFAULT_INPUT as PREFILTER_INPUT
from models.prefilter import PrefilterCNN, PrefilterEnsemble
from models.preprocess import InputSpec, decode_batch, to_tensor

# called with each epoch's record: model, seed, epoch, epochs, loss, train_acc, seconds
Progress = Callable[[dict], None] | None

# The training recipes fit_models uses unless told otherwise. The prefilter learns
# where cups are when frames carry boxes (box_mil_loss) and sees half its frames zoomed
# out (more small cups, the ones that set its threshold); more and harder negatives for
# the heavy model target look-alike cups. Both see 30% of their negatives in other colours
# (recolour): an unseen background in a brand's colours must not read as the brand.
PREFILTER_RECIPE: dict = {"zoom_out": 0.5, "recolour": 0.3}
HEAVY_RECIPE: dict = {"neg_ratio": 1.5, "hard_fraction": 0.7, "recolour": 0.3}


def default_prefilter_input() -> InputSpec:
    return InputSpec(*PREFILTER_INPUT)


def default_heavy_input() -> InputSpec:
    return InputSpec(*HEAVY_INPUT, crop=HEAVY_CROP)


def has_label(labels) -> np.ndarray:
    return np.array([lab is not None and not (isinstance(lab, float) and math.isnan(lab))
                     and lab != "" for lab in labels], dtype=bool)


def _run_epochs(model: nn.Module, images: np.ndarray, targets: torch.Tensor, spec: InputSpec,
                epoch_indices: Callable[[int, np.random.Generator], np.ndarray],
                loss_fn: Callable, *, epochs: int, batch_size: int, lr: float,
                weight_decay: float, seed: int, name: str, progress: Progress,
                zoom_out: float = 0.0, boxes: np.ndarray | None = None,
                box_loss: Callable | None = None, recolour_share: float = 0.0,
                recolourable: np.ndarray | None = None) -> list[dict]:
    """Generic AdamW + one-cycle loop over uint8 images with augmentation.

    `recolour_share` of the `recolourable` images (N bool) get other colours (recolour).

    With `boxes` (N x K x 4, NaN for none), they are augmented with the images and
    `box_loss(model, x, y, boxes)` returns (loss, outputs) instead of loss_fn(model(x), y).
    """
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(epoch_indices(-1, np.random.default_rng(0))) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.2)
    # channels_last makes depthwise-conv backward several times faster on CPU
    model.to(memory_format=torch.channels_last)
    history = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        idx = epoch_indices(epoch, rng)
        idx = idx[rng.permutation(len(idx))]
        total, count, correct = 0.0, 0, 0
        for step in range(steps_per_epoch):
            b = idx[step * batch_size:(step + 1) * batch_size]
            if len(b) < 2:  # BatchNorm needs 2+ samples
                continue
            y = targets[b]
            if boxes is None:
                aug, bx = augment(images[b], rng, zoom_out=zoom_out), None
            else:
                aug, bx = augment(images[b], rng, zoom_out=zoom_out, boxes=boxes[b])
            if recolour_share > 0:
                aug = recolour(aug, rng, recolour_share, None if recolourable is None else recolourable[b])
            x = to_tensor(aug, spec).contiguous(memory_format=torch.channels_last)
            if bx is None:
                out = model(x)
                loss = loss_fn(out, y)
            else:
                loss, out = box_loss(model, x, y, bx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
            with torch.no_grad():
                pred = (out > 0).float() if out.ndim == 1 else out.argmax(1)
                correct += int((pred == y).sum())
        rec = {"epoch": epoch + 1, "loss": total / max(count, 1),
               "train_acc": correct / max(count, 1), "seconds": time.perf_counter() - t0}
        history.append(rec)
        if progress:
            progress({"model": name, "seed": seed, "epochs": epochs, **rec})
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return history


def frame_boxes(frames: pd.DataFrame) -> np.ndarray | None:
    """N x K x 4 boxes from a `boxes` column (lists of [x0, y0, x1, y1]; NaN pads), or None without one."""
    if "boxes" not in frames.columns:
        return None
    lists = [[] if b is None or (isinstance(b, float) and math.isnan(b)) else list(b) for b in frames["boxes"]]
    out = np.full((len(frames), max([len(b) for b in lists] + [1]), 4), np.nan)
    for i, bs in enumerate(lists):
        for j, b in enumerate(bs):
            out[i, j] = np.asarray(b, dtype=np.float64)
    return out


def prefilter_targets(frames: pd.DataFrame) -> np.ndarray:
    """What the prefilter should pass: a frame with a label."""
    return has_label(frames["label"])


def train_prefilter(frames: pd.DataFrame, *, epochs: int = 40, seed: int = 0, batch_size: int = 64,
                    lr: float = 1e-2, weight_decay: float = 1e-4, pos_fraction: float = 0.4,
                    pos_weight: float = 2.0, focal_gamma: float = 0.0, zoom_out: float = 0.0,
                    recolour: float = 0.0, use_boxes: bool = True, input_spec: InputSpec | None = None,
                    arch_kwargs: dict | None = None, images: np.ndarray | None = None,
                    init_state: dict | None = None, progress: Progress = None) -> tuple[PrefilterCNN, list[dict]]:
    """Binary cup/no-cup model (target: label is not None).

    Positives are oversampled to `pos_fraction` of each epoch and weighted by
    `pos_weight` in the loss (recall first); `focal_gamma` > 0 makes it a focal loss and
    `zoom_out` shrinks that share of the images (see augment) and `recolour` gives that
    share of the negatives other colours (see recolour). Targets are
    prefilter_targets. With a `boxes` column and
    `use_boxes`, training is box-supervised (box_mil_loss) and negative frames with a box
    (an object only partly in view) are left out. `images` =
    decode_batch(frames.jpeg) at `input_spec` if already decoded.
    """
    spec = input_spec or default_prefilter_input()
    torch.manual_seed(seed)
    model = PrefilterCNN(**(arch_kwargs or {}))
    if init_state is not None:  # fine-tuning: start from these weights (see fit_models' `init`)
        model.load_state_dict(init_state)
    model.arch_kwargs = dict(arch_kwargs or {})  # for registration
    if images is None:
        images = decode_batch(list(frames["jpeg"]), spec)
    y = prefilter_targets(frames)
    boxes = frame_boxes(frames) if use_boxes else None
    usable = np.ones(len(y), bool)
    if boxes is not None:
        usable = y | np.isnan(boxes).all(axis=(1, 2))  # drop negatives that show part of an object
    pos, neg = np.flatnonzero(y & usable), np.flatnonzero(~y & usable)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("prefilter training needs both positive and negative frames")
    n = int(usable.sum())
    n_pos = int(round(n * pos_fraction))

    def epoch_indices(epoch, rng):
        return np.concatenate([rng.choice(pos, n_pos, replace=n_pos > len(pos)),
                               rng.choice(neg, n - n_pos, replace=n - n_pos > len(neg))])

    def crit(logits, targets):
        return focal_bce(logits, targets, focal_gamma, pos_weight)

    def box_loss(model, x, y, bx):
        return box_mil_loss(model, x, y, bx, crit)

    history = _run_epochs(model, images, torch.from_numpy(y.astype(np.float32)), spec,
                          epoch_indices, crit, epochs=epochs, batch_size=batch_size, lr=lr,
                          weight_decay=weight_decay, seed=seed, name="prefilter",
                          progress=progress, zoom_out=zoom_out, boxes=boxes, box_loss=box_loss,
                          recolour_share=recolour, recolourable=~y)
    return model, history


def class_targets(labels, class_names: list[str]) -> np.ndarray:
    """Labels -> indices: 0 = none (None or a label not in class_names), 1..C = class."""
    lookup = {c: i + 1 for i, c in enumerate(class_names)}
    return np.array([lookup.get(lab, 0) if isinstance(lab, str) else 0 for lab in labels],
                    dtype=np.int64)


def train_heavy(frames: pd.DataFrame, class_names: list[str], *, epochs: int = 8, seed: int = 0,
                batch_size: int = 48, lr: float = 5e-3, weight_decay: float = 4e-5,
                width_mult: float = 0.5, arch_kwargs: dict | None = None,
                neg_ratio: float = 1.0, hard_fraction: float = 0.5, recolour: float = 0.0,
                prefilter_scores: np.ndarray | None = None,
                input_spec: InputSpec | None = None, images: np.ndarray | None = None,
                init_state: dict | None = None, progress: Progress = None) -> tuple[MobileNetLike, list[dict]]:
    """Cross-entropy over none + class_names.

    Each epoch: every class frame plus `neg_ratio` x as many negatives, of which
    `hard_fraction` are the hard negatives (highest `prefilter_scores`) and the rest a
    fresh random draw;
    `recolour` gives that share of the negatives other colours (see recolour).
    """
    spec = input_spec or default_heavy_input()
    torch.manual_seed(seed)
    kwargs = {"num_classes": len(class_names), "width_mult": width_mult, **(arch_kwargs or {})}
    model = MobileNetLike(**kwargs)
    if init_state is not None:
        model.load_state_dict(init_state)
    if images is None:
        images = decode_batch(list(frames["jpeg"]), spec)
    y = class_targets(frames["label"], class_names)
    pos, neg = np.flatnonzero(y > 0), np.flatnonzero(y == 0)
    if len(pos) == 0:
        raise ValueError("heavy training needs frames of at least one class")
    n_neg = min(len(neg), int(round(neg_ratio * len(pos))))
    n_hard = int(round(n_neg * hard_fraction)) if prefilter_scores is not None else 0
    hard = neg[np.argsort(-np.asarray(prefilter_scores)[neg], kind="stable")[:n_hard]] \
        if n_hard else np.zeros(0, np.int64)
    rest = np.setdiff1d(neg, hard)

    def epoch_indices(epoch, rng):
        return np.concatenate([pos, hard, rng.choice(rest, min(len(rest), n_neg - n_hard),
                                                     replace=False)]).astype(np.int64)

    history = _run_epochs(model, images, torch.from_numpy(y), spec, epoch_indices,
                          nn.CrossEntropyLoss(), epochs=epochs, batch_size=batch_size, lr=lr,
                          weight_decay=weight_decay, seed=seed, name="heavy", progress=progress,
                          recolour_share=recolour, recolourable=y == 0)
    model.arch_kwargs = kwargs  # for registration
    return model, history


def fit_members(fit_one: Callable[[int], tuple[nn.Module, list[dict]]], count: int, ensemble_type: type,
                arch: str, ensemble_arch: str) -> tuple[nn.Module, str, dict, list[dict]]:
    """Train `count` models with fit_one(k) (k = 0, 1, ...: the caller's seed offset).

    One model is registered as itself (`arch`); more become one `ensemble_type` of them
    (`ensemble_arch`). Returns (model, arch, arch_kwargs, history); with several members each
    history record names its member.
    """
    members, history = [], []
    for k in range(count):
        member, hist = fit_one(k)
        members.append(member)
        history += [{**h, "member": k} for h in hist] if count > 1 else hist
    kwargs = members[0].arch_kwargs
    if count == 1:
        return members[0], arch, kwargs, history
    return ensemble_type.from_members(members, **kwargs), ensemble_arch, {"members": count, **kwargs}, history


@dataclass
class FittedModel:
    """A trained network with what its registration needs."""

    module: nn.Module
    arch: str
    arch_kwargs: dict
    input: InputSpec
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    recipe: dict = field(default_factory=dict)


def as_predictor(role: str, fitted: FittedModel, class_names: list[str], flops: int | None = None) -> Predictor:
    """The fitted model behind the pipeline's inference path (not registered yet)."""
    spec = {"input": fitted.input.to_dict(), "class_names": class_names, "flops_per_frame": flops}
    return Predictor(role, "unregistered", spec, fitted.module)


def member_init(spec: dict, module: nn.Module) -> tuple[list[dict], dict]:
    """A registered model's members' weights and the architecture arguments of one member: where
    fine-tuning starts (`fit_models`' `init`)."""
    members = list(module.members) if hasattr(module, "members") else [module]
    kwargs = {k: v for k, v in (spec.get("arch_kwargs") or {}).items() if k not in ("members", "gate")}
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in members], kwargs


def fit_models(train_frames: pd.DataFrame, class_names: list[str], *, seed: int = 0,
               prefilter_epochs: int = 30, heavy_epochs: int = 12, heavy_width_mult: float = 0.5,
               heavy_members: int = 1, prefilter_members: int = 1,
               prefilter_channels: tuple[int, ...] | None = None, prefilter_options: dict | None = None,
               heavy_options: dict | None = None, init: dict[str, tuple[list[dict], dict]] | None = None,
               progress: Progress = None) -> tuple[FittedModel, FittedModel]:
    """Train the prefilter, then the heavy model on the crops the prefilter hands it.

    `prefilter_members` > 1 trains that many prefilters (of `prefilter_channels`, default
    PrefilterCNN's) from seeds seed, seed+1, ... as one PrefilterEnsemble; `heavy_members`
    > 1 likewise as one HeavyEnsemble. The heavy model's hard negatives are the training
    frames the prefilter scores highest.

    `init` ({role: member_init(...)}) fine-tunes instead: each member starts from a registered
    model's member (their count and architecture win over the arguments), and the options'
    `lr` (in prefilter_options / heavy_options) is usually lowered by the caller.
    """
    class_names = [str(c) for c in class_names]
    init = init or {}
    if "prefilter" in init:
        prefilter_members, pf_init_kwargs = len(init["prefilter"][0]), init["prefilter"][1]
    if "heavy" in init:
        heavy_members, hv_init_kwargs = len(init["heavy"][0]), init["heavy"][1]
    p_spec, h_spec = default_prefilter_input(), default_heavy_input()
    tr_p = decode_batch(list(train_frames["jpeg"]), p_spec)
    pf_opts = {**PREFILTER_RECIPE, **(prefilter_options or {})}
    hv_opts = {**HEAVY_RECIPE, **(heavy_options or {})}
    pf_kwargs = {} if prefilter_channels is None else {"channels": [int(c) for c in prefilter_channels]}
    if "prefilter" in init:
        pf_kwargs = dict(pf_init_kwargs)
    hv_kwargs = dict(hv_init_kwargs) if "heavy" in init else None

    def start(role: str, k: int) -> dict | None:
        return init[role][0][k] if role in init else None

    t0 = time.perf_counter()
    module, arch, kwargs, hist = fit_members(
        lambda k: train_prefilter(train_frames, epochs=prefilter_epochs, seed=seed + k, input_spec=p_spec,
                                  images=tr_p, arch_kwargs=pf_kwargs, init_state=start("prefilter", k),
                                  progress=progress, **pf_opts),
        prefilter_members, PrefilterEnsemble, "prefilter_cnn", "prefilter_ensemble")
    prefilter = FittedModel(module, arch, kwargs, p_spec, hist, time.perf_counter() - t0,
                            {"epochs": prefilter_epochs, "members": prefilter_members, **pf_opts})

    t0 = time.perf_counter()
    pf_train, tr_centers, _ = as_predictor("prefilter", prefilter, ["cup"]).locate_inputs(tr_p)
    del tr_p
    tr_h = decode_batch(list(train_frames["jpeg"]), h_spec, tr_centers)
    module, arch, kwargs, hist = fit_members(
        lambda k: train_heavy(train_frames, class_names, epochs=heavy_epochs, seed=seed + k,
                              width_mult=heavy_width_mult, prefilter_scores=pf_train, input_spec=h_spec,
                              images=tr_h, arch_kwargs=hv_kwargs, init_state=start("heavy", k), progress=progress,
                              **hv_opts),
        heavy_members, HeavyEnsemble, "mobilenet_like", "mobilenet_ensemble")
    heavy = FittedModel(module, arch, kwargs, h_spec, hist, time.perf_counter() - t0,
                        {"epochs": heavy_epochs, "members": heavy_members, **hv_opts})
    return prefilter, heavy
