"""Day-over-day drift checks on run figures (pure Python, no Great Expectations).

`today` and each entry of `history` are dicts of the night's figures:
`videos`, `sampled_frames`, `prefilter_passed` and/or `prefilter_pass_rate`,
`detections` and `brand_share` (brand -> share of detections). `history` is
most recent first; at most `window` (7) days are used.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

VOLUME_METRICS = ("videos", "sampled_frames", "prefilter_pass_rate")
MIN_HISTORY_DAYS = 3
WINDOW_DAYS = 7
MIN_DETECTIONS_FOR_BRANDS = 20


@dataclass
class DriftReport:
    """Drift findings; `critical` should stop the run, `warnings` go to the summary."""

    warnings: list[str] = field(default_factory=list)
    critical: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.critical

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def metric_value(figures: Mapping[str, Any], metric: str) -> float | None:
    """A metric from a day's figures; the pass rate is derived from counts if absent."""
    v = _number(figures.get(metric))
    if v is None and metric == "prefilter_pass_rate":
        passed = _number(figures.get("prefilter_passed"))
        frames = _number(figures.get("sampled_frames"))
        if passed is not None and frames:
            v = passed / frames
    return v


def _fmt(v: float) -> str:
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.4g}"


def _ratio(today: float, baseline: float) -> float:
    """Symmetric change factor (>= 1); inf when exactly one side is zero."""
    if today == baseline:
        return 1.0
    if today <= 0 or baseline <= 0:
        return math.inf
    return max(today / baseline, baseline / today)


def normalise_shares(shares: Mapping[str, Any] | None) -> dict[str, float]:
    """Non-negative shares rescaled to sum to 1 (empty when there is nothing)."""
    clean = {str(k): float(v) for k, v in (shares or {}).items() if _number(v) is not None}
    clean = {k: v for k, v in clean.items() if v > 0}
    total = sum(clean.values())
    return {k: v / total for k, v in clean.items()} if total > 0 else {}


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Total variation distance between two distributions over brands."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def check_drift(
    today: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    *,
    warn_factor: float = 2.0,
    critical_factor: float = 10.0,
    tvd_warn: float = 0.3,
    tvd_critical: float = 0.6,
    min_history: int = MIN_HISTORY_DAYS,
    window: int = WINDOW_DAYS,
    min_detections: int = MIN_DETECTIONS_FOR_BRANDS,
) -> DriftReport:
    """Compare today's figures with the trailing `window` days (median / average)."""
    report = DriftReport()
    recent = list(history)[:window]
    if len(recent) < min_history:
        report.info.append(
            f"drift check skipped: {len(recent)} day(s) of history, need at least {min_history}"
        )
        return report
    tol = 1e-9
    for metric in VOLUME_METRICS:
        value = metric_value(today, metric)
        past = [v for v in (metric_value(day, metric) for day in recent) if v is not None]
        if value is None:
            report.info.append(f"{metric}: no value today, not checked")
            continue
        if len(past) < min_history:
            report.info.append(f"{metric}: {len(past)} day(s) of history, not checked")
            continue
        baseline = statistics.median(past)
        ratio = _ratio(value, baseline)
        direction = "up" if value > baseline else "down"
        msg = (
            f"{metric} drift: today {_fmt(value)} vs trailing {len(past)}-day median "
            f"{_fmt(baseline)} ({'inf' if math.isinf(ratio) else f'{ratio:.1f}'}x {direction})"
        )
        if ratio >= critical_factor * (1 - tol):
            report.critical.append(msg)
        elif ratio >= warn_factor * (1 - tol):
            report.warnings.append(msg)

    _check_brands(today, recent, report, tvd_warn, tvd_critical, min_history, min_detections)
    return report


def _check_brands(
    today: Mapping[str, Any],
    recent: Sequence[Mapping[str, Any]],
    report: DriftReport,
    tvd_warn: float,
    tvd_critical: float,
    min_history: int,
    min_detections: int,
) -> None:
    shares = normalise_shares(today.get("brand_share"))
    detections = _number(today.get("detections"))
    if not shares:
        report.info.append("brand_share: no brand distribution today, not checked")
        return
    if detections is None or detections < min_detections:
        report.info.append(
            f"brand_share: {_fmt(detections) if detections is not None else 'unknown'} "
            f"detection(s) today, need at least {min_detections}, not checked"
        )
        return
    past = [p for p in (normalise_shares(day.get("brand_share")) for day in recent) if p]
    if len(past) < min_history:
        report.info.append(f"brand_share: {len(past)} day(s) of history, not checked")
        return
    brands = set().union(*past)
    baseline = {b: sum(p.get(b, 0.0) for p in past) / len(past) for b in brands}
    tvd = total_variation(shares, baseline)
    top_today = max(shares, key=shares.get)
    top_base = max(baseline, key=baseline.get)
    msg = (
        f"brand_share drift: total variation {tvd:.2f} between today "
        f"(top {top_today} {shares[top_today]:.0%}, {_fmt(detections)} detections) and the "
        f"trailing {len(past)}-day average (top {top_base} {baseline[top_base]:.0%})"
    )
    if tvd > tvd_critical:
        report.critical.append(msg)
    elif tvd > tvd_warn:
        report.warnings.append(msg)


def quarantine_spike(
    today: float,
    history: Sequence[float],
    *,
    factor: float = 3.0,
    margin: float = 0.05,
    min_history: int = MIN_HISTORY_DAYS,
    window: int = WINDOW_DAYS,
) -> str | None:
    """A message when today's quarantined share of videos is far above the trailing days'
    (above both `factor` x their median and their median + `margin`), else None; None too
    with fewer than `min_history` days to compare with."""
    past = [float(v) for v in list(history)[:window] if _number(v) is not None]
    if len(past) < min_history:
        return None
    baseline = statistics.median(past)
    if today > max(baseline * factor, baseline + margin):
        return (f"quarantined share {today:.1%} vs the trailing {len(past)}-day median {baseline:.1%} "
                f"(more than {factor:g}x and {margin:.0%} above it)")
    return None
