"""What a model spec may ask for, and which pairs a run may use.

Checked at registration, at every load (`ModelRegistry.load`, so in every Spark worker) and
by the nightly DAG's `resolve_models` before any Spark job starts:

- bounds (`check_bounds`): each input side at most `MAX_SIDE` pixels and at most
  `MAX_PIXELS` pixels per input, at most `MAX_CLASSES` classes; refused from the spec's
  numbers alone, before anything is allocated;
- pairs (`check_pair`): a heavy model whose input crops around the prefilter's peak
  (`input.crop`) needs a prefilter that gives a location map; a prefilter without one
  reports the frame's centre, and the crop would silently miss every off-centre object.

Nothing here imports torch: the DAG's tasks stay cheap.
"""

from __future__ import annotations

import math

MAX_SIDE = 1024  # pixels, each side of a model's input
MAX_PIXELS = 1024 * 576  # pixels per input: a 16:9 frame at MAX_SIDE, or 768x768
MAX_CLASSES = 1000
LOCALIZING_PREFILTER_ARCHS = ("prefilter_cnn", "prefilter_ensemble")  # built-ins with a location map


class ModelRefused(ValueError):
    """A model (or a pair) that must not be registered, loaded or run."""


def check_bounds(role: str, spec: dict) -> None:
    """Refuse a spec whose input or class list is out of bounds, from its numbers alone."""
    name = f"{role} {spec.get('version', '(unregistered)')}"
    inp = spec.get("input")
    if not isinstance(inp, dict):
        raise ModelRefused(f"{name}: the spec has no input size")
    try:
        width, height = int(inp["width"]), int(inp["height"])
    except (KeyError, TypeError, ValueError):
        raise ModelRefused(f"{name}: the input size must be two whole numbers (width, height)") from None
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ModelRefused(f"{name}: input {width}x{height} is out of bounds: each side must be 1..{MAX_SIDE} px")
    if width * height > MAX_PIXELS:
        raise ModelRefused(f"{name}: input {width}x{height} is {width * height} pixels; at most {MAX_PIXELS} "
                           f"(e.g. 1024x576 or 768x768)")
    for key in ("mean", "std"):
        values = inp.get(key)
        if values is None:
            continue
        if (not isinstance(values, (list, tuple)) or len(values) != 3
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)):
            raise ModelRefused(f"{name}: input {key} must be three finite numbers")
        if key == "std" and min(values) <= 0:
            raise ModelRefused(f"{name}: input std must be positive")
    crop = inp.get("crop")
    if crop is not None and not (isinstance(crop, (int, float)) and 0 < crop <= 1):
        raise ModelRefused(f"{name}: input crop must be a fraction of the frame height in (0, 1]")
    classes = spec.get("class_names")
    if not isinstance(classes, list) or not classes:
        raise ModelRefused(f"{name}: the spec has no class names")
    if len(classes) > MAX_CLASSES:
        raise ModelRefused(f"{name}: {len(classes)} classes; at most {MAX_CLASSES}")


def localizes(spec: dict) -> bool:
    """Whether a prefilter gives a location map: built-in prefilters do; a TorchScript one only
    when its registration found a `logit_map` method (`spec["localizes"]`)."""
    if spec.get("arch") in LOCALIZING_PREFILTER_ARCHS:
        return True
    return spec.get("localizes") is True


def check_pair(prefilter_spec: dict, heavy_spec: dict) -> None:
    """Refuse a heavy model that crops around the prefilter's peak paired with a prefilter
    that has no location map (it would always crop the frame's centre)."""
    crop = (heavy_spec.get("input") or {}).get("crop")
    if crop and not localizes(prefilter_spec):
        raise ModelRefused(
            f"heavy {heavy_spec.get('version')} crops {crop} of the frame around the prefilter's peak, but "
            f"prefilter {prefilter_spec.get('version')} ({prefilter_spec.get('arch')}) gives no location map: "
            f"every crop would be the frame's centre and off-centre objects would be missed. Pair it with a "
            f"prefilter that localizes (a built-in one, or a TorchScript prefilter exporting logit_map), or "
            f"register the heavy model without --crop")


def admit_pair(registry, prefilter: str, heavy: str) -> dict[str, str]:
    """The versions a run will use, after checking both against their stored files' sha256,
    their bounds, and as a pair (raises ModelRefused / ValueError with the reason).

    Resolves `production` to the shipped models in a registry that has none.
    """
    from models.shipped import resolve

    versions = {"prefilter": resolve(registry, "prefilter", prefilter), "heavy": resolve(registry, "heavy", heavy)}
    specs = {}
    for role, version in versions.items():
        spec = registry.spec(role, version)
        check_bounds(role, spec)
        registry.files(role, version)  # every file against the sha256 its spec records
        specs[role] = spec
    check_pair(specs["prefilter"], specs["heavy"])
    return versions
