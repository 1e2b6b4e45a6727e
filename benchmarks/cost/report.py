"""The benchmark's table (text) and HTML report (the funnel, where the CPU goes, cost
against day size; matplotlib figures inlined as SVG)."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

VARIANTS = (("decode_limit", "decode limit (PyAV, the sampling rule)"),
            ("fused_floor", "fused floor (the cascade, no Spark)"), ("naive", "naive (30 fps, heavy model)"),
            ("sampled_only", "sampled only (1 fps, heavy model)"), ("percolate", "Percolate (marginal)"))


def _fmt(v, spec: str = ",.0f") -> str:
    return "n/a" if v is None else format(v, spec)


def table(fig: dict) -> str:
    """One block per encoding: every variant's throughput and quality, and the ratios."""
    lines = ["vh/core-h: video-hours per core-hour, i.e. times realtime on one core; P, R: user-day precision "
             "and recall against the generated truth"]
    for enc, f in fig["encodings"].items():
        lines.append(f"\n{enc} ({f['percolate']['video_s'] / 3600:.2f} video-hours)")
        lines.append(f"  {'variant':<40}{'CPU-s/vh':>10}{'vh/core-h':>11}{'heavy/vh':>10}"
                     f"{'GFLOP/vh':>10}{'peak MB':>9}{'P':>7}{'R':>7}")
        for key, name in VARIANTS:
            v = f.get(key)
            if not v:
                continue
            lines.append(f"  {name:<40}{_fmt(v['cpu_s_per_video_hour'], ',.1f'):>10}"
                         f"{_fmt(v['video_hours_per_core_hour'], ',.1f'):>11}"
                         f"{_fmt(v.get('heavy_calls_per_video_hour')):>10}"
                         f"{_fmt((v.get('flops_per_video_hour') or 0) / 1e9):>10}{_fmt(v['peak_rss_mb']):>9}"
                         f"{_fmt(v.get('user_day_precision'), '.3f'):>7}{_fmt(v.get('user_day_recall'), '.3f'):>7}")
        p = f["percolate"]
        lines.append(f"  Percolate all-in on this day: {p['all_in_cpu_s_per_video_hour']:.1f} CPU-s/vh "
                     f"({_fmt(p['all_in_video_hours_per_core_hour'], ',.1f')} vh/core-h); fixed cost per run "
                     f"{p['fixed_cpu_s_per_run']:.0f} CPU-s")
        spread = p.get("marginal_cpu_s_per_video_hour_range")
        if spread:
            dl = f["decode_limit"]["repeats_cpu_s_per_video_hour"]
            lines.append(f"  repeated runs: Percolate's marginal {spread[0]:.1f}-{spread[1]:.1f} CPU-s/vh at the extremes "
                         f"(day {', '.join(f'{c:.1f}' for c in p['repeats_cpu_s'])} CPU-s; the median run's kept), "
                         f"the decode limit {min(dl):.1f}-{max(dl):.1f} CPU-s/vh")
        ff = f.get("fused_floor")
        if ff:
            agree = ff.get("agreement_with_nightly") or {}
            lines.append(f"  fused floor: {_fmt(ff['ratio_to_decode_limit'], '.2f')} of the decode limit; at 0.7 it "
                         f"leaves {ff['left_at_0_7_cpu_s_per_video_hour']:.1f} CPU-s/vh for Spark, the decode child, "
                         f"the hand-overs and publishing; prefilter passes {agree.get('fused_passed')} (nightly "
                         f"{agree.get('nightly_passed')}, both {agree.get('both_passed')} of {agree.get('frames')} frames)")
        lines.append("  where the marginal CPU goes (CPU-s per video-hour): " + ", ".join(
            f"{k} {v:.1f}" for k, v in f["where_the_cpu_goes_per_video_hour"].items()))
        m = f["money"]
        lines.append(f"  money: ${m['configured']['usd_per_1000_video_hours']:.2f} per 1,000 video-hours at "
                     f"${m['configured']['price_per_core_hour']}/core-h; the talk's 4M video-hours/day at "
                     f"$0.02/core-h: ${m['talk_price']['talk_scenario_usd_per_day']:,.0f}/day (decode limit alone "
                     f"${m['decode_limit_talk_price']['talk_scenario_usd_per_day']:,.0f}/day; budget $100)")
    keys = ["percolate_video_hours_per_core_hour", "decode_limit_video_hours_per_core_hour", "ratio_to_decode_limit",
            "naive_cpu_ratio_gop1s", "naive_cpu_ratio_gop10s", "user_day_precision", "user_day_recall",
            "sampled_only_user_day_recall"]
    lines.append("\nHeadline (gop1s; targets: ratio >= 0.7, naive ratio >= 30 (gop1s) / 5 (gop10s), "
                 "P/R within 1 point of sampled only, 800x realtime per core):")
    lines += [f"  {k}: {fig.get(k)}" for k in keys]
    return "\n".join(lines)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _charts(fig: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    encs = list(fig["encodings"])
    f1, ax = plt.subplots(figsize=(7, 3.2))
    for i, enc in enumerate(encs):
        funnel = fig["encodings"][enc]["funnel"]
        xs = [x + i * 0.4 for x in range(len(funnel))]
        ax.bar(xs, [max(v, 1) for v in funnel.values()], width=0.4, label=enc)
    ax.set_xticks([x + 0.2 for x in range(len(funnel))], list(funnel), rotation=15, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("frames")
    ax.legend()
    out.append(("The funnel (Percolate on the benchmark day)", _svg(f1)))

    f2, ax = plt.subplots(figsize=(7, 3.6))
    parts = sorted({k for enc in encs for k in fig["encodings"][enc]["where_the_cpu_goes_per_video_hour"]})
    bottoms = [0.0] * len(encs)
    for part in parts:
        vals = [fig["encodings"][e]["where_the_cpu_goes_per_video_hour"].get(part, 0.0) for e in encs]
        ax.bar(encs, vals, bottom=bottoms, label=part)
        bottoms = [b + v for b, v in zip(bottoms, vals)]
    dl = [fig["encodings"][e]["decode_limit"]["cpu_s_per_video_hour"] for e in encs]
    ax.scatter(encs, dl, marker="_", s=900, color="black", label="decode limit", zorder=3)
    ax.scatter(encs, [d / 0.7 for d in dl], marker="_", s=900, color="red", label="target: 0.7 of its throughput",
               zorder=3)
    floors = [(e, fig["encodings"][e]["fused_floor"]["cpu_s_per_video_hour"]) for e in encs
              if "fused_floor" in fig["encodings"][e]]
    if floors:
        ax.scatter(*zip(*floors), marker="x", color="black", label="fused floor (no Spark)", zorder=3)
    ax.set_ylabel("marginal CPU-s per video-hour")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    out.append(("Where Percolate's marginal CPU goes", _svg(f2)))

    f3, ax = plt.subplots(figsize=(7, 3.2))
    for enc in encs:
        curve = fig["encodings"][enc]["day_size_curve"]
        ax.plot([c["video_hours"] for c in curve], [c["cpu_s_per_video_hour"] for c in curve], label=enc)
    ax.axhline(3600 / 800, color="grey", linestyle=":", label="800x realtime per core")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("video-hours in the day")
    ax.set_ylabel("CPU-s per video-hour (all-in)")
    ax.legend(fontsize=8)
    out.append(("Cost against day size (fixed per run + marginal per video-hour)", _svg(f3)))
    return out


def write_html(fig: dict, path: Path, text_table: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    charts = "".join(f"<h2>{html.escape(t)}</h2>{svg}" for t, svg in _charts(fig))
    body = (f"<h1>Percolate cost benchmark</h1><p>{html.escape(fig.get('when', ''))} · "
            f"{html.escape(fig.get('machine', ''))} · <code>{html.escape(fig.get('command', ''))}</code></p>"
            f"<pre>{html.escape(text_table)}</pre>{charts}<h2>Method</h2><pre>{html.escape(fig['method'])}</pre>"
            f"<h2>Figures</h2><pre>{html.escape(json.dumps({k: v for k, v in fig.items() if k != 'raw'}, indent=1, default=str))}</pre>")
    path.write_text(f"<!doctype html><meta charset='utf-8'><title>Percolate cost benchmark</title>"
                    f"<style>body{{font-family:sans-serif;max-width:1000px;margin:auto}}pre{{font-size:12px}}</style>"
                    f"{body}")
    return path
