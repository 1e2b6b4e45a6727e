"""Human-readable summaries of a run: the cost funnel and CPU/cost figures."""

from __future__ import annotations

import json


def funnel_stages(summary: dict) -> list[tuple[str, int]]:
    """The funnel of a run summary (a `pipeline_runs` row): each stage and its count."""
    return [
        ("videos", int(summary.get("videos_ok") or 0)),
        ("sampled frames", int(summary.get("sampled_frames") or 0)),
        ("prefilter passed", int(summary.get("prefilter_passed") or 0)),
        ("heavy model runs", int(summary.get("heavy_model_runs") or 0)),
        ("heavy frames >= thr", int(summary.get("heavy_positives") or 0)),
        ("user-brand detections", int(summary.get("user_brand_detections") or 0)),
    ]


def format_funnel(summary: dict) -> str:
    """The run's funnel, CPU seconds per stage and estimated cost, as aligned text."""
    lines = [f"Percolate run {summary.get('run_id')} for {summary.get('date')}: {summary.get('status')}", "",
             "Funnel"]
    stages = funnel_stages(summary)
    previous = None
    for name, count in stages:
        share = f"  ({count / previous:6.1%} of previous)" if previous and name != "sampled frames" else ""
        if name == "heavy model runs" and previous:
            share += f"  (the other {previous - count:,} reused an unchanged input)"
        lines.append(f"  {name:<24}{count:>10,}{share}")
        previous = count or None
    if summary.get("videos_quarantined"):
        lines.append(f"  {'videos quarantined':<24}{summary['videos_quarantined']:>10,}")
    lines += ["", "CPU seconds"]
    for stage in ("sample_frames", "prefilter", "heavy", "publish"):
        lines.append(f"  {stage:<24}{float(summary.get(f'cpu_s_{stage}') or 0):>10.1f}")
    lines.append(f"  {'total':<24}{float(summary.get('cpu_s_total') or 0):>10.1f}")
    hours = float(summary.get("video_seconds") or 0) / 3600
    lines += ["", f"Video processed: {hours:.2f} h; estimated cost ${float(summary.get('estimated_cost_usd') or 0):.4f}"
              + (f" (${summary['cost_per_video_hour_usd']:.4f} per video-hour)"
                 if summary.get("cost_per_video_hour_usd") else "")]
    lines.append(f"Models: prefilter {summary.get('prefilter_version')} (threshold "
                 f"{float(summary.get('prefilter_threshold') or 0):.4f}), heavy {summary.get('heavy_version')} "
                 f"(threshold {float(summary.get('heavy_threshold') or 0):.4f}, rule {summary.get('aggregation')})")
    lines.append(f"Audit: {summary.get('audit_drawn') or 0} frames drawn for labelling; " + format_recall(summary))
    suites = json.loads(summary.get("validation") or "{}")
    if suites:
        lines.append("Validation: " + ", ".join(f"{k} {v}" for k, v in sorted(suites.items())))
    if summary.get("data_docs"):
        lines.append(f"Data docs: {summary['data_docs']}")
    warnings = json.loads(summary.get("warnings") or "[]")
    lines.append(f"Warnings ({len(warnings)}):" if warnings else "Warnings: none")
    lines += [f"  - {w}" for w in warnings[:20]]
    if len(warnings) > 20:
        lines.append(f"  ... {len(warnings) - 20} more in pipeline_runs.warnings")
    return "\n".join(lines)


def format_recall(row: dict) -> str:
    """The prefilter's recall estimated from the audit sample, beside its calibrated bound (keys of
    a `pipeline_runs` row)."""
    bound = row.get("prefilter_recall_bound")
    bound = "" if bound is None else f" (calibrated lower bound {bound:.1%})"
    if row.get("prefilter_recall_estimate") is None:
        return f"prefilter recall: no labelled audit frames in the trailing 7 days yet{bound}"
    return (f"prefilter recall estimated from the audit {row['prefilter_recall_estimate']:.1%} (95% interval "
            f"{row['prefilter_recall_low']:.1%}-{row['prefilter_recall_high']:.1%}, {row['audit_labelled_frames']} "
            f"labelled frames of {row['audit_days']} days){bound}")


def format_rows(rows: list[dict], limit: int = 20) -> str:
    """A plain text table of query rows."""
    if not rows:
        return "(no rows)"
    cols = list(rows[0].keys())
    shown = [[("" if r[c] is None else str(r[c])) for c in cols] for r in rows[:limit]]
    widths = [min(40, max(len(c), *(len(v[i]) for v in shown))) for i, c in enumerate(cols)]
    out = ["  ".join(c[:w].ljust(w) for c, w in zip(cols, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v[:w].ljust(w) for v, w in zip(row, widths)) for row in shown]
    if len(rows) > limit:
        out.append(f"... {len(rows) - limit} more rows")
    return "\n".join(out)
