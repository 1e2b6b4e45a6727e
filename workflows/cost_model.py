"""`percolate cost-model`: the talk's five-step cost table, recomputed from its inputs, beside
the cost this pipeline measured (`make bench`'s var/reports/bench/latest.json).

The talk (the seed talk of the project) prices FLOPs on GPUs and ignores decoding: every
step multiplies frames per second by FLOPs per frame. The measured table prices CPU
seconds per video-hour at a price per core-hour, stage by stage, so the line the talk has
no row for (decoding the video) shows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class TalkInputs:
    """The talk's numbers (users, hours, budget, models, GPUs, prices)."""

    users: int = 1_000_000
    hours_per_user: float = 4.0
    budget_usd_per_day: float = 100.0
    video_fps: float = 30.0
    sampled_fps: float = 1.0
    big_model_flops: float = 40e9  # an off-the-shelf detector, per frame
    mobilenet_flops: float = 4e9  # the MobileNet-class model, per frame
    prefilter_flops_per_s: float = 100e6  # the two-stage prefilter, per stream
    heavy_fps_after_prefilter: float = 0.0001  # frames per second the heavy model still sees
    gpu_flops: float = 8.7e12
    gpu_usd_per_hour: float = 0.45
    fast_gpu_flops: float = 312e12
    fast_gpu_usd_per_hour: float = 2.93

    @property
    def video_hours_per_day(self) -> float:
        return self.users * self.hours_per_user


def _step(name: str, flops_per_s: float, gpu_flops: float, usd_per_hour: float, hours: float, note: str = "") -> dict:
    daily = flops_per_s * hours * SECONDS_PER_HOUR
    gpu_hours = daily / gpu_flops / SECONDS_PER_HOUR
    return {"step": name, "flops_per_s_per_stream": flops_per_s, "daily_flops": daily, "gpu_hours": gpu_hours,
            "usd_per_day": gpu_hours * usd_per_hour, "note": note}


def talk_table(t: TalkInputs = TalkInputs()) -> list[dict]:
    """The talk's five attempts, from its inputs (its slide rounds: $248,275, $8,280, $828, $152, $0.01)."""
    h = t.video_hours_per_day
    heavy_only = t.mobilenet_flops * t.heavy_fps_after_prefilter
    return [
        _step("1. big model on every frame", t.video_fps * t.big_model_flops, t.gpu_flops, t.gpu_usd_per_hour, h),
        _step("2. 1 frame per second", t.sampled_fps * t.big_model_flops, t.gpu_flops, t.gpu_usd_per_hour, h),
        _step("3. MobileNet-class model", t.sampled_fps * t.mobilenet_flops, t.gpu_flops, t.gpu_usd_per_hour, h),
        _step("4. faster GPUs", t.sampled_fps * t.mobilenet_flops, t.fast_gpu_flops, t.fast_gpu_usd_per_hour, h),
        _step("5. prefilter + heavy model (heavy stage only, as the talk counts it)", heavy_only, t.fast_gpu_flops,
              t.fast_gpu_usd_per_hour, h, "the prefilter's 100 MFLOP/s per stream is left out"),
        _step("5'. the same with the prefilter counted", heavy_only + t.prefilter_flops_per_s, t.fast_gpu_flops,
              t.fast_gpu_usd_per_hour, h, "still no decoding"),
    ]


def measured_table(latest: dict, video_hours_per_day: float, price: float) -> list[dict]:
    """This pipeline's marginal cost per stage (gop1s encoding), priced per core-hour, for the
    talk's day; the decode limit on its own first: the line the talk has no row for."""
    enc = latest["encodings"]["gop1s"]
    per_vh = dict(enc["where_the_cpu_goes_per_video_hour"])
    rows = [{"step": "decode limit alone (PyAV, 1 frame/s, RGB)",
             "cpu_s_per_video_hour": enc["decode_limit"]["cpu_s_per_video_hour"]}]
    rows += [{"step": f"Percolate: {name}", "cpu_s_per_video_hour": v} for name, v in per_vh.items()]
    rows.append({"step": "Percolate, marginal total", "cpu_s_per_video_hour": enc["percolate"]["cpu_s_per_video_hour"]})
    for r in rows:
        core_hours = r["cpu_s_per_video_hour"] / SECONDS_PER_HOUR * video_hours_per_day
        r.update(core_hours_per_day=core_hours, usd_per_day=core_hours * price)
    return rows


def cost_model(latest_path: Path, price: float, inputs: TalkInputs = TalkInputs()) -> dict:
    out = {"inputs": asdict(inputs), "video_hours_per_day": inputs.video_hours_per_day, "talk": talk_table(inputs)}
    if latest_path.exists():
        latest = json.loads(latest_path.read_text())
        out["measured"] = {"source": str(latest_path), "when": latest.get("when"), "commit": latest.get("commit"),
                           "prices": {}}
        for p in sorted({price, 0.02}):
            out["measured"]["prices"][str(p)] = measured_table(latest, inputs.video_hours_per_day, p)
    return out


def format_cost_model(out: dict) -> str:
    lines = [f"The talk's table ({out['video_hours_per_day']:,.0f} video-hours a day; budget "
             f"${out['inputs']['budget_usd_per_day']:,.0f}/day):",
             f"  {'step':<72}{'FLOP/s/stream':>15}{'GPU-h/day':>12}{'$/day':>12}"]
    for r in out["talk"]:
        lines.append(f"  {r['step']:<72}{r['flops_per_s_per_stream']:>15.3g}{r['gpu_hours']:>12,.1f}"
                     f"{r['usd_per_day']:>12,.2f}")
    lines.append("  (no row for decoding the video: every step assumes the frames are free)")
    measured = out.get("measured")
    if not measured:
        lines.append("\nNo measured table: run `make bench` (writes var/reports/bench/latest.json).")
        return "\n".join(lines)
    for price, rows in measured["prices"].items():
        lines += ["", f"Measured by `make bench` ({measured['when']}, commit {measured['commit']}), CPU at "
                      f"${float(price)}/core-hour, marginal cost:",
                  f"  {'step':<72}{'CPU-s/vh':>10}{'core-h/day':>14}{'$/day':>12}"]
        for r in rows:
            lines.append(f"  {r['step']:<72}{r['cpu_s_per_video_hour']:>10.2f}{r['core_hours_per_day']:>14,.0f}"
                         f"{r['usd_per_day']:>12,.0f}")
    return "\n".join(lines)
