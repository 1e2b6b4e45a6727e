"""The benchmark's figures from its raw results: throughput, ratios, where the CPU goes, money.

Percolate's cost is split into a fixed cost per run and a marginal cost per video-hour from
two day sizes (the tiny day and the benchmark day): marginal = (CPU_big - CPU_tiny) /
(hours_big - hours_tiny), fixed = CPU_tiny - marginal x hours_tiny. The headline figures use
the marginal cost (at 4 million video-hours a day a run's fixed cost is noise); the all-in
figure of the benchmark day is reported beside them. The naive and sampled-only Spark jobs
subtract the fixed cost of the same job on no videos, measured in the same run.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.cost.run import TALK_PRICE, TALK_VIDEO_HOURS

STAGES = ("sample_frames", "prefilter", "heavy", "publish")


def _vh(seconds: float) -> float:
    return float(seconds) / 3600.0


def _ratio(a: float | None, b: float | None, digits: int) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def _per_core_hour(video_s: float, cpu_s: float) -> float | None:
    return round(_vh(video_s) / (cpu_s / 3600.0), 1) if cpu_s > 0 else None


def stage_cpu(run: dict) -> dict[str, float]:
    """CPU seconds of one nightly run by stage (the jobs' own metering) and "airflow": the rest
    of the process tree (Airflow, its in-process tasks, the GX validations, and whatever CPU
    of the jobs their own metering did not see)."""
    s = run["summary"]
    cpu = {stage: float(s.get(f"cpu_s_{stage}") or 0.0) for stage in STAGES}
    cpu["airflow"] = max(float(run["meter"]["cpu_s"]) - sum(cpu.values()), 0.0)
    return cpu


def split_fixed_marginal(tiny: dict | None, big: dict) -> dict:
    """Fixed CPU seconds per run and marginal CPU seconds per video-hour, in total and by stage
    (without a tiny day: no fixed cost measured, the marginal figures are the all-in ones)."""
    if tiny is None:
        tiny = {"summary": {"video_seconds": 0.0, **{f"cpu_s_{s}": 0.0 for s in STAGES}}, "meter": {"cpu_s": 0.0}}
    t_vh, b_vh = _vh(tiny["summary"]["video_seconds"]), _vh(big["summary"]["video_seconds"])
    t, b = stage_cpu(tiny), stage_cpu(big)
    marginal = {k: max((b[k] - t[k]) / (b_vh - t_vh), 0.0) for k in b}
    fixed = {k: max(t[k] - marginal[k] * t_vh, 0.0) for k in t}
    total_m = (float(big["meter"]["cpu_s"]) - float(tiny["meter"]["cpu_s"])) / (b_vh - t_vh)
    return {"marginal_cpu_s_per_video_hour": round(total_m, 2),
            "fixed_cpu_s_per_run": round(float(tiny["meter"]["cpu_s"]) - total_m * t_vh, 1),
            "marginal_by_stage": {k: round(v, 2) for k, v in marginal.items()},
            "fixed_by_stage": {k: round(v, 1) for k, v in fixed.items()}}


def marginal_range(tiny: dict | None, big: dict) -> list[float] | None:
    """The marginal CPU-s per video-hour that the repeated runs allow at the extremes (the
    cheapest day against the dearest tiny day, and the reverse): the noise on the headline."""
    days = big.get("repeats_cpu_s") or [float(big["meter"]["cpu_s"])]
    tinies = (tiny.get("repeats_cpu_s") or [float(tiny["meter"]["cpu_s"])]) if tiny else [0.0]
    if len(days) < 2 and len(tinies) < 2:
        return None
    t_vh = _vh(tiny["summary"]["video_seconds"]) if tiny else 0.0
    span = _vh(big["summary"]["video_seconds"]) - t_vh
    return [round((min(days) - max(tinies)) / span, 2), round((max(days) - min(tinies)) / span, 2)]


def _model_variant(v: dict, fixed_cpu: float, flops: float) -> dict:
    cpu, video_s = float(v["meter"]["cpu_s"]), float(v["video_s"])
    work = cpu - fixed_cpu  # not above zero on a day of seconds (the smoke run): no figure
    return {"calls": len(v["calls"]), "video_s": video_s, "cpu_s": cpu, "wall_s": v["meter"]["wall_s"],
            "peak_rss_mb": v["meter"]["peak_rss_mb"], "fixed_cpu_s_subtracted": fixed_cpu,
            "cpu_s_per_video_hour": round(work / _vh(video_s), 1) if work > 0 else None,
            "all_in_cpu_s_per_video_hour": round(cpu / _vh(video_s), 1),
            "video_hours_per_core_hour": _per_core_hour(video_s, work),
            "frames": v["frames"], "heavy_calls_per_video_hour": round(v["heavy_calls"] / _vh(video_s)),
            "flops_per_video_hour": round(v["frames"] * flops / _vh(video_s)),
            "user_day_precision": v["user_day"]["precision"], "user_day_recall": v["user_day"]["recall"]}


def encoding_figures(raw: dict, enc: str) -> dict:
    out = raw["variants"][enc]
    models = raw["models"]
    pf, hv = float(models["prefilter"]["flops_per_frame"] or 0), float(models["heavy"]["flops_per_frame"] or 0)
    day_s = float(raw["day"]["video_seconds"])
    dl = out["decode_limit"]
    job_fixed = float(raw["variants"]["gop1s"]["job_fixed"]["meter"]["cpu_s"])
    perc = out["percolate"]
    s = perc["summary"]
    split = split_fixed_marginal(raw.get("percolate_tiny"), perc)
    m = split["marginal_cpu_s_per_video_hour"]
    vh = _vh(s["video_seconds"])
    fig = {
        "decode_limit": {"cpu_s": dl["meter"]["cpu_s"], "wall_s": dl["meter"]["wall_s"],
                         "peak_rss_mb": dl["meter"]["peak_rss_mb"],
                         "cpu_s_per_video_hour": round(dl["meter"]["cpu_s"] / _vh(day_s), 2),
                         "repeats_cpu_s_per_video_hour": [round(c / _vh(day_s), 2)
                                                          for c in dl.get("repeats_cpu_s", [dl["meter"]["cpu_s"]])],
                         "video_hours_per_core_hour": _per_core_hour(day_s, dl["meter"]["cpu_s"]),
                         "frames_decoded": dl["frames_decoded"], "frames_sampled": dl["frames_sampled"],
                         "modes": dl["modes"], "heavy_calls_per_video_hour": 0, "flops_per_video_hour": 0},
        "naive": _model_variant(out["naive"], job_fixed, pf + hv),
        "percolate": {
            "cpu_s": perc["meter"]["cpu_s"], "wall_s": perc["meter"]["wall_s"],
            "peak_rss_mb": perc["meter"]["peak_rss_mb"], "video_s": s["video_seconds"],
            "cpu_s_per_video_hour": m, "video_hours_per_core_hour": round(3600.0 / m, 1) if m > 0 else None,
            "repeats_cpu_s": perc.get("repeats_cpu_s", [perc["meter"]["cpu_s"]]),
            "marginal_cpu_s_per_video_hour_range": marginal_range(raw.get("percolate_tiny"), perc),
            "all_in_cpu_s_per_video_hour": round(perc["meter"]["cpu_s"] / vh, 1),
            "all_in_video_hours_per_core_hour": _per_core_hour(s["video_seconds"], perc["meter"]["cpu_s"]),
            "sampled_frames": s["sampled_frames"], "prefilter_passed": s["prefilter_passed"],
            "jpegs_kept": s.get("frames_kept", s["sampled_frames"]), "audit_keep_rate": s.get("audit_keep_rate"),
            "heavy_calls": s["heavy_model_runs"], "heavy_calls_per_video_hour": round(s["heavy_model_runs"] / vh),
            "flops_per_video_hour": round((s["sampled_frames"] * pf + s["heavy_model_runs"] * hv) / vh),
            "decode_modes": s.get("decode_modes"), "videos_quarantined": s.get("videos_quarantined"),
            "user_day_precision": perc["user_day"]["precision"], "user_day_recall": perc["user_day"]["recall"],
            **split},
    }
    if "fused_floor" in out:
        fig["fused_floor"] = fused_floor_figures(out["fused_floor"], dl, day_s, (pf, hv))
    if "sampled_only" in out:
        fig["sampled_only"] = _model_variant(out["sampled_only"], job_fixed, pf + hv)
    fig["funnel"] = {"frames in the videos (30 fps)": round(day_s * 30),
                     "frames decoded": dl["frames_decoded"], "sampled": s["sampled_frames"],
                     "JPEGs kept": s.get("frames_kept", s["sampled_frames"]),
                     "passed the prefilter": s["prefilter_passed"], "heavy model calls": s["heavy_model_runs"]}
    return fig


def fused_floor_figures(ff: dict, dl: dict, day_s: float, flops: tuple[float, float]) -> dict:
    """The fused floor's throughput against the decode limit's, and what 0.7 of the decode
    limit leaves for the rest of the pipeline (Spark, the decode child, the hand-overs,
    validation, publishing). Both by their workers' CPU on the files (`work_cpu_s`: no process
    start, imports or model loading, which the floor would pay once a run); the metered tree
    beside. `flops`: the prefilter's and the heavy model's per frame."""
    vh = _vh(day_s)
    work = float(ff["work_cpu_s"])
    limit = float(dl.get("work_cpu_s") or dl["meter"]["cpu_s"])
    return {"cpu_s": ff["meter"]["cpu_s"], "wall_s": ff["meter"]["wall_s"], "peak_rss_mb": ff["meter"]["peak_rss_mb"],
            "work_cpu_s": work, "cpu_s_per_video_hour": round(work / vh, 2),
            "all_in_cpu_s_per_video_hour": round(float(ff["meter"]["cpu_s"]) / vh, 2),
            "video_hours_per_core_hour": _per_core_hour(day_s, work),
            "decode_limit_work_cpu_s_per_video_hour": round(limit / vh, 2),
            "ratio_to_decode_limit": _ratio(limit, work, 3),
            "left_at_0_7_cpu_s_per_video_hour": round((limit / 0.7 - work) / vh, 2),
            "frames_sampled": ff["frames_sampled"], "passed": ff["passed"], "audited": ff["audited"],
            "audit_share": ff["audit_share"],
            "steps_cpu_s_per_video_hour": {k: round(v / vh, 2) for k, v in ff["steps_cpu_s"].items()},
            "heavy_calls_per_video_hour": round(ff["passed"] / vh),
            "flops_per_video_hour": round((ff["frames_sampled"] * flops[0] + ff["passed"] * flops[1]) / vh),
            "agreement_with_nightly": ff.get("agreement")}


def money(cpu_s_per_video_hour: float, price: float) -> dict:
    core_h = cpu_s_per_video_hour / 3600.0
    return {"price_per_core_hour": price, "usd_per_1000_video_hours": round(1000 * core_h * price, 3),
            "talk_scenario_usd_per_day": round(TALK_VIDEO_HOURS * core_h * price, 0)}


def day_size_curve(fixed_s: float, marginal_s: float, points: int = 25) -> list[dict]:
    """CPU per video-hour at each day size under the fixed + marginal model."""
    return [{"video_hours": float(v), "cpu_s_per_video_hour": round(marginal_s + fixed_s / v, 2)}
            for v in np.logspace(-2, math.log10(TALK_VIDEO_HOURS), points)]


def figures(raw: dict, price: float) -> dict:
    """Every figure, with the keys `make bench` promises at the top level (gop1s values;
    `_gop10s` for the long-GOP encoding)."""
    from benchmarks.cost.components import attribute

    per = {enc: encoding_figures(raw, enc) for enc in raw["variants"]}
    out: dict = {}
    for enc, f in per.items():
        suffix = "" if enc == "gop1s" else f"_{enc}"
        p, d = f["percolate"], f["decode_limit"]
        out[f"percolate_video_hours_per_core_hour{suffix}"] = p["video_hours_per_core_hour"]
        out[f"percolate_all_in_video_hours_per_core_hour{suffix}"] = p["all_in_video_hours_per_core_hour"]
        out[f"decode_limit_video_hours_per_core_hour{suffix}"] = d["video_hours_per_core_hour"]
        out[f"ratio_to_decode_limit{suffix}"] = _ratio(p["video_hours_per_core_hour"],
                                                       d["video_hours_per_core_hour"], 3)
        if "fused_floor" in f:
            out[f"fused_floor_ratio_to_decode_limit{suffix}"] = f["fused_floor"]["ratio_to_decode_limit"]
        out[f"naive_cpu_ratio_{enc}"] = _ratio(f["naive"]["cpu_s_per_video_hour"], p["cpu_s_per_video_hour"], 1)
        out[f"user_day_precision{suffix}"] = p["user_day_precision"]
        out[f"user_day_recall{suffix}"] = p["user_day_recall"]
        if "sampled_only" in f:
            out[f"sampled_only_user_day_recall{suffix}"] = f["sampled_only"]["user_day_recall"]
            out[f"sampled_only_user_day_precision{suffix}"] = f["sampled_only"]["user_day_precision"]
        s = p["sampled_frames"] / _vh(p["video_s"])
        funnel = {"sampled_per_vh": s, "passed_per_vh": p["prefilter_passed"] / _vh(p["video_s"]),
                  "kept_per_vh": p["jpegs_kept"] / _vh(p["video_s"]),
                  "heavy_runs_per_vh": p["heavy_calls"] / _vh(p["video_s"])}
        f["where_the_cpu_goes_per_video_hour"] = attribute(p["marginal_by_stage"], funnel,
                                                           raw["variants"][enc]["components"])
        f["money"] = {"configured": money(p["cpu_s_per_video_hour"], price),
                      "talk_price": money(p["cpu_s_per_video_hour"], TALK_PRICE),
                      "decode_limit_talk_price": money(d["cpu_s_per_video_hour"], TALK_PRICE)}
        f["day_size_curve"] = day_size_curve(p["fixed_cpu_s_per_run"], p["cpu_s_per_video_hour"])
    out["realtime_per_core_target"] = 800
    out["encodings"] = per
    out["generation"] = raw["day"]["generation"]
    out["day"] = {k: raw["day"][k] for k in ("name", "key", "dates", "calls", "video_seconds", "hd_calls")}
    out["method"] = __doc__.strip()
    return out

