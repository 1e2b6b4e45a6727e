"""The day's cost before it runs, and the sampling rate a budget allows.

Pure functions: the day's manifest rows (and what earlier runs learnt about its videos) plus
per-stage cost rates give CPU seconds and USD per stage (`estimate_day`); the rates come from
the trailing successful runs' own metrics (`fit_rates`), or from `DEFAULT_RATES` (measured
below) when there is no history. `choose_rate` walks the fixed ladder of sampling rates.

The cost model, per run and per stage (the three Spark jobs, the prefilter's share of the
sampling job counted as its own stage; the scope of `cpu_s_total`):

    cpu_s(stage) = fixed(stage) + per_frame(stage) * sampled_frames  [+ decode, sample_frames only]
    decode       = sum over videos of video_s * rate(resolution class, decode mode) * scale
    scale        = fps / 1 in keyframes mode (one keyframe decoded per bucket), 1 in full decode
                   (every frame is decoded whatever the rate)

A lower rate therefore saves the per-frame stages everywhere but the decode only where
keyframes serve every bucket; a long-GOP day degrades poorly, and the estimate says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping

STAGES = ("sample_frames", "prefilter", "heavy", "publish")  # as percolate.core.layout.STAGES
RATE_LADDER: tuple[float, ...] = (1.0, 0.5, 0.25)  # frames/s a degraded run may fall back to
POLICIES: tuple[str, ...] = ("refuse", "degrade")
KEYFRAMES, NONREF, ALL = "keyframes", "nonref", "all"
UNKNOWN = "unknown"
RESOLUTION_CLASSES: tuple[tuple[str, int], ...] = (("sd", 640 * 480), ("hd", 1280 * 720), ("fhd", 1920 * 1088))


class OverBudgetError(RuntimeError):
    """The day's estimate is over the budget at every rate the policy allows."""


def resolution_class(width, height) -> str:
    """sd (up to 640x480), hd (up to 1280x720), fhd (up to 1920x1088), uhd (above); unknown."""
    if not width or not height or (isinstance(width, float) and math.isnan(width)):
        return UNKNOWN
    pixels = int(width) * int(height)
    return next((name for name, top in RESOLUTION_CLASSES if pixels <= top), "uhd")


def rate_key(res_class: str, mode: str | None) -> str:
    return f"{res_class}/{mode or UNKNOWN}"


@dataclass(frozen=True)
class CostRates:
    """What a run costs: a fixed part per stage, a part per sampled frame per stage, and the
    decode per video-second by resolution class and decode mode (`rate_key`; keyframes mode
    at 1 frame/s). `video_s_per_byte` turns a stored size into seconds when nothing else
    knows a video's duration; `keyframe_share` is the share of video-seconds decoded in
    keyframes mode, for videos whose mode is not known yet."""

    fixed_cpu_s: Mapping[str, float]
    frame_cpu_s: Mapping[str, float]
    decode_cpu_s_per_video_s: Mapping[str, float]
    video_s_per_byte: float
    keyframe_share: float
    source: str = "defaults"
    days: tuple[str, ...] = ()

    def decode_rate(self, res_class: str, mode: str | None) -> float:
        """CPU-s per video-second at 1 frame/s; unknown class or mode: the pooled figures."""
        table = self.decode_cpu_s_per_video_s
        for key in (rate_key(res_class, mode), rate_key(UNKNOWN, mode)):
            if key in table:
                return table[key]
        if mode is None or mode == UNKNOWN:  # unknown mode: the history's mix of the two
            kf, full = self.decode_rate(res_class, KEYFRAMES), self.decode_rate(res_class, ALL)
            return self.keyframe_share * kf + (1 - self.keyframe_share) * full
        if mode == NONREF:  # no history in this mode yet: full decode bounds it from above
            return self.decode_rate(res_class, ALL)
        return max(table.values())  # a class never seen: the dearest known (over, not under)


# Measured on the 2-core machine (docs/cost.md, "Fixed cost per run"): the fixed part from a
# 2-call day (97 s of video) through `percolate nightly`, 2026-12-03 (the mean of two runs' job
# CPU); the marginal part from issue 18's 2-call and 40-call days, 2026-11-29 (640x360 H.264,
# a keyframe a second, 1 frame/s); full decode from `benchmarks/bench_sampler.py`. The
# prefilter, scored in the sampling task since 2026-12-06, has no JVM of its own: its fixed
# part is loading the model in each Python worker (1.2-1.7 CPU-s on the tiny day), its part a
# frame the JPEG decode and forward pass (1.58 and 1.65 CPU-ms a frame in the full and the
# 16-call `make bench` of 2026-12-06; docs/cost.md, "The fused hand-over").
DEFAULT_RATES = CostRates(
    fixed_cpu_s={"sample_frames": 19.0, "prefilter": 1.5, "heavy": 15.0, "publish": 38.0},
    frame_cpu_s={"sample_frames": 0.0, "prefilter": 5.8 / 3600, "heavy": 6.9 / 3600, "publish": 0.9 / 3600},
    # keyframes: the pipeline's sampling stage, 21.4 CPU-s per video-hour at 640x360; full decode
    # 3.6x that (bench_sampler, 2026-12-03: 133 vs 483 video-s per CPU-s); larger frames by pixels
    decode_cpu_s_per_video_s={rate_key(cls, mode): 21.4 / 3600 * px * (1 if mode == KEYFRAMES else 3.6)
                              for cls, px in (("sd", 1), ("hd", 4), ("fhd", 9), ("uhd", 36))
                              for mode in (KEYFRAMES, ALL)}
                             # a video never decoded yet (no resolution known): a call's usual 640x360
                             | {rate_key(UNKNOWN, mode): 21.4 / 3600 * (1 if mode == KEYFRAMES else 3.6)
                                for mode in (KEYFRAMES, ALL)},
    video_s_per_byte=97.13 / 16_087_536,  # 1.3 Mbit/s: a generated 2-call day, 2026-12-03
    keyframe_share=1.0,
)


@dataclass(frozen=True)
class VideoFacts:
    """What is known of one video of the manifest before the run: its duration (None: from its
    size), resolution class and decode mode (unknown until a run decoded it)."""

    call_id: str
    size_bytes: int = 0
    duration_s: float | None = None
    res_class: str = UNKNOWN
    decode_mode: str | None = None


def video_facts(manifest: Iterable[Mapping], known: Mapping[str, Mapping] | None = None) -> list[VideoFacts]:
    """The manifest's rows with what an earlier run of the date found (`known`: call_id ->
    duration_s, width, height, decode_mode, e.g. the date's `calls` rows)."""
    known = known or {}
    out = []
    for row in manifest:
        k = known.get(row["call_id"], {})
        duration = k.get("duration_s")
        out.append(VideoFacts(row["call_id"], int(row.get("size_bytes") or 0),
                              float(duration) if duration and duration == duration else None,
                              resolution_class(k.get("width"), k.get("height")), k.get("decode_mode") or None))
    return out


def estimate_day(videos: list[VideoFacts], rates: CostRates, fps: float, cost_per_core_hour: float) -> dict:
    """CPU seconds and USD per stage of one run over `videos` at `fps` frames/s."""
    seconds = frames = decode = 0.0
    for v in videos:
        s = v.duration_s if v.duration_s is not None else v.size_bytes * rates.video_s_per_byte
        if v.decode_mode == KEYFRAMES:
            scale = fps
        elif v.decode_mode == ALL:
            scale = 1.0
        else:  # unknown: keyframes mode where the history decoded that way
            scale = rates.keyframe_share * fps + (1 - rates.keyframe_share)
        seconds += s
        frames += s * fps
        decode += s * rates.decode_rate(v.res_class, v.decode_mode) * scale
    cpu = {st: rates.fixed_cpu_s.get(st, 0.0) + rates.frame_cpu_s.get(st, 0.0) * frames for st in STAGES}
    cpu["sample_frames"] += decode
    usd = {st: c / 3600 * cost_per_core_hour for st, c in cpu.items()}
    total = sum(cpu.values())
    return {"fps": fps, "videos": len(videos), "video_seconds": round(seconds, 1), "sampled_frames": round(frames),
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()}, "usd": {k: round(v, 8) for k, v in usd.items()},
            "cpu_s_total": round(total, 2), "cost_usd": round(total / 3600 * cost_per_core_hour, 8),
            "fixed_cpu_s": round(sum(rates.fixed_cpu_s.get(st, 0.0) for st in STAGES), 2),
            "rates": rates.source}


def ladder_from(requested_fps: float, ladder: tuple[float, ...] = RATE_LADDER) -> list[float]:
    """The rates a degraded run may try, highest first: the requested one, then the ladder's
    lower ones."""
    return [requested_fps] + [r for r in ladder if r < requested_fps]


def usd(amount: float) -> str:
    """$1,234.56, or six decimals under a dollar (a small day costs fractions of a cent)."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.6f}"


def choose_rate(estimate_at: Callable[[float], dict], requested_fps: float, budget_usd: float | None,
                policy: str = "refuse", ladder: tuple[float, ...] = RATE_LADDER) -> dict:
    """The rate to run at and its estimate: the requested one when it fits the budget (or there
    is none); with `degrade`, the highest rate of the ladder whose estimate fits. Raises
    `OverBudgetError` when none fits, with the estimates tried."""
    if policy not in POLICIES:
        raise ValueError(f"on_over_budget must be one of {POLICIES}, not {policy!r}")
    tried = []
    for fps in ladder_from(requested_fps, ladder) if policy == "degrade" else [requested_fps]:
        estimate = estimate_at(fps)
        tried.append({"fps": fps, "cost_usd": estimate["cost_usd"]})
        if budget_usd is None or estimate["cost_usd"] <= budget_usd:
            status = "no_budget" if budget_usd is None else ("within" if fps == requested_fps else "degraded")
            return {"fps": fps, "estimate": estimate, "budget_usd": budget_usd, "policy": policy,
                    "status": status, "tried": tried}
    raise OverBudgetError(
        f"the estimated cost is over the budget of {usd(budget_usd)} ({policy}): "
        + ", ".join(f"{usd(t['cost_usd'])} at {t['fps']:g} frames/s" for t in tried)
        + f" (rates: {estimate['rates']})"
        + ("" if policy == "degrade" else "; on_over_budget=degrade would try lower sampling rates"))


# ---- rates from history -----------------------------------------------------------------------

def _line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares a + b x, or None when x does not vary or a coefficient comes out negative."""
    n = len(points)
    if n < 2:
        return None
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    a = my - b * mx
    return (a, b) if a >= 0 and b >= 0 else None


def fit_rates(runs: list[Mapping], videos: list[Mapping], default: CostRates = DEFAULT_RATES) -> CostRates:
    """Rates from the trailing successful runs: `runs` are their `pipeline_runs` rows (dt,
    cpu_s_<stage>, sampled_frames, video_seconds, sampler fps as `fps`, stored bytes as
    `size_bytes` when known), `videos` their processed videos (`calls` rows: width, height,
    decode_mode, duration_s, cpu_s_decode, with the run's `fps`).

    Decode rates per class and mode come from the videos' own decode CPU; each stage's fixed
    and per-frame parts from a line through the runs (CPU against sampled frames) where their
    sizes differ, else the default fixed part and the rest per frame. Figures with no history
    keep the defaults."""
    runs = [r for r in runs if r.get("video_seconds") and r.get("sampled_frames")]
    if not runs:
        return default
    decode: dict[str, list[float]] = {}
    seconds_by_mode = {KEYFRAMES: 0.0, ALL: 0.0}
    decode_by_run: dict[str, float] = {}
    for v in videos:
        s, cpu, mode = v.get("duration_s"), v.get("cpu_s_decode"), v.get("decode_mode")
        if not s or cpu is None or mode not in seconds_by_mode or s != s or cpu != cpu:
            continue
        per_1fps = float(cpu) / (float(v.get("fps") or 1.0) if mode == KEYFRAMES else 1.0)
        for key in (rate_key(resolution_class(v.get("width"), v.get("height")), mode), rate_key(UNKNOWN, mode)):
            acc = decode.setdefault(key, [0.0, 0.0])  # per class, and pooled for videos of unknown class
            acc[0] += per_1fps
            acc[1] += float(s)
        seconds_by_mode[mode] += float(s)
        decode_by_run[v.get("dt")] = decode_by_run.get(v.get("dt"), 0.0) + float(cpu)
    decode_rates = dict(default.decode_cpu_s_per_video_s)
    decode_rates.update({k: c / s for k, (c, s) in decode.items() if s > 0})
    fixed, per_frame = dict(default.fixed_cpu_s), dict(default.frame_cpu_s)
    for st in STAGES:
        points = []
        for r in runs:
            cpu = float(r.get(f"cpu_s_{st}") or 0.0)
            if st == "sample_frames":
                cpu -= decode_by_run.get(r.get("dt"), 0.0)
            points.append((float(r["sampled_frames"]), max(cpu, 0.0)))
        line = _line(points)
        if line:
            fixed[st], per_frame[st] = line
        else:
            frames = sum(x for x, _ in points)
            per_frame[st] = max(sum(y for _, y in points) - fixed[st] * len(points), 0.0) / frames
    sized = [r for r in runs if r.get("size_bytes")]
    per_byte = (sum(r["video_seconds"] for r in sized) / sum(r["size_bytes"] for r in sized) if sized
                else default.video_s_per_byte)
    decoded_s = sum(seconds_by_mode.values())
    share = seconds_by_mode[KEYFRAMES] / decoded_s if decoded_s else default.keyframe_share
    return replace(default, fixed_cpu_s=fixed, frame_cpu_s=per_frame, decode_cpu_s_per_video_s=decode_rates,
                   video_s_per_byte=per_byte, keyframe_share=share,
                   source="history " + ",".join(sorted(str(r.get("dt")) for r in runs)),
                   days=tuple(sorted(str(r.get("dt")) for r in runs)))


def expected_recall(evaluation: Mapping | None, fps: float) -> float | None:
    """User-day recall at `fps` from a recorded evaluation (`recall_by_rate`: rate -> figures);
    None when it was not measured at that rate."""
    if not evaluation:
        return None
    by_rate = evaluation.get("recall_by_rate") or {}
    for key, figures in by_rate.items():
        if abs(float(key) - fps) < 1e-9:
            value = figures.get("recall") if isinstance(figures, Mapping) else figures
            return None if value is None else float(value)
    return None

