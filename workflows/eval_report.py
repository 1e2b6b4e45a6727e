"""The evaluation's HTML report: figures plus plots (PR curves, confusion matrix,
threshold calibration, cost funnel), each plot an embedded PNG so the file stands alone."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from workflows.scoring import prefilter_max_note


def png_img(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _pr_figure(table: pd.DataFrame, daily_rule: dict, pf_threshold: float, hv_threshold: float):
    import matplotlib.pyplot as plt

    from models.thresholds import apply_aggregation
    from workflows.scoring import pr_curve, true_user_brands

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    pos = table["true_label"].notna()
    # prefilter: cup vs no cup over every sampled frame
    c = pr_curve(table["prefilter_score"], pos, int(pos.sum()))
    ax = axes[0]
    ax.plot(c["recall"], c["precision"])
    at = c[c["threshold"] >= pf_threshold].iloc[-1] if (c["threshold"] >= pf_threshold).any() else None
    if at is not None:
        ax.plot([at["recall"]], [at["precision"]], "ro", label=f"threshold {pf_threshold:.3g}")
        ax.legend(loc="lower left")
    ax.set(title="Prefilter (frame has a cup)", xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    # heavy: right brand, over the frames it saw (recall over all cup frames of the day)
    seen = table[table["label"].notna()]
    c = pr_curve(seen["score"], seen["label"] == seen["true_label"], int(pos.sum()))
    ax = axes[1]
    ax.plot(c["recall"], c["precision"])
    if (c["threshold"] >= hv_threshold).any():
        at = c[c["threshold"] >= hv_threshold].iloc[-1]
        ax.plot([at["recall"]], [at["precision"]], "ro", label=f"threshold {hv_threshold:.3g}")
        ax.legend(loc="lower left")
    ax.set(title="Cascade frames (right brand)", xlabel="recall", ylabel="precision", xlim=(0, 1.02),
           ylim=(0, 1.02))
    # user-day: the rule's k with min_score varied
    truth = true_user_brands(table)
    k = int(daily_rule.get("min_frames", 1))
    votes = seen.rename(columns={"label": "pred_brand"})
    pts = []
    for s in np.unique(np.r_[np.linspace(0, 1, 41), float(daily_rule.get("min_score", 0))]):
        det = apply_aggregation(votes, {"min_frames": k, "min_score": float(s)})
        pred = set(det[["user_id", "brand"]].itertuples(index=False, name=None))
        if pred:
            pts.append((s, len(pred & truth) / len(pred), len(pred & truth) / max(len(truth), 1)))
    ax = axes[2]
    if pts:
        arr = np.array(pts)
        ax.plot(arr[:, 2], arr[:, 1], marker=".")
        s0 = float(daily_rule.get("min_score", 0))
        chosen = arr[np.argmin(np.abs(arr[:, 0] - s0))]
        ax.plot([chosen[2]], [chosen[1]], "ro", label=f"rule k={k}, score>={s0:.3g}")
        ax.legend(loc="lower left")
    ax.axhline(0.99, color="grey", ls=":")
    ax.axvline(0.90, color="grey", ls=":")
    ax.set(title=f"User-days (k={k}, score varied)", xlabel="recall", ylabel="precision", xlim=(0, 1.02),
           ylim=(0, 1.02))
    fig.tight_layout()
    return fig


def _confusion_figure(table: pd.DataFrame, class_names: list[str]):
    import matplotlib.pyplot as plt

    from workflows.scoring import confusion

    labels, m = confusion(table, class_names)
    fig, ax = plt.subplots(figsize=(8, 7))
    shown = np.log1p(m)
    ax.imshow(shown, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > shown.max() * 0.6 else "black")
    ax.set(title="Frames: true (rows) vs detected (columns)", xlabel="detected", ylabel="true")
    fig.tight_layout()
    return fig


def _calibration_figure(table: pd.DataFrame, pf_spec: dict, hv_spec: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    pos = table["true_label"].notna().to_numpy()
    s = table["prefilter_score"].to_numpy()
    grid = np.unique(np.r_[np.quantile(s, np.linspace(0, 1, 200)), float(pf_spec["threshold"])])
    recall = [(s[pos] >= t).mean() if pos.any() else np.nan for t in grid]
    pass_rate = [(s >= t).mean() for t in grid]
    ax = axes[0]
    ax.plot(grid, recall, label="recall on cup frames (this evaluation)")
    ax.plot(grid, pass_rate, label="pass rate (share of frames passing the prefilter)")
    ax.axvline(pf_spec["threshold"], color="red", ls="--", label=f"calibrated threshold {pf_spec['threshold']:.3g}")
    m = pf_spec.get("metrics", {})
    if m.get("calib_recall_lower_bound") is not None:
        ax.axhline(m["calib_recall_lower_bound"], color="grey", ls=":",
                   label=f"calibration recall lower bound {m['calib_recall_lower_bound']:.3f}")
    ax.set(title="Prefilter threshold", xlabel="threshold on prefilter score", ylim=(0, 1.02))
    ax.legend(fontsize=8, loc="center left")
    # reliability of the heavy model's brand probability on the frames it saw
    seen = table[table["label"].notna()]
    ax = axes[1]
    if len(seen):
        bins = np.linspace(0, 1, 11)
        idx = np.clip(np.digitize(seen["score"], bins) - 1, 0, 9)
        correct = (seen["label"] == seen["true_label"]).to_numpy()
        xs, ys, ns = [], [], []
        for b in range(10):
            sel = idx == b
            if sel.any():
                xs.append(seen["score"].to_numpy()[sel].mean())
                ys.append(correct[sel].mean())
                ns.append(int(sel.sum()))
        ax.plot([0, 1], [0, 1], color="grey", ls=":")
        ax.plot(xs, ys, marker="o")
        for x, y, n in zip(xs, ys, ns):
            ax.annotate(str(n), (x, y), fontsize=7, textcoords="offset points", xytext=(3, -10))
        ax.axvline(hv_spec["threshold"], color="red", ls="--", label=f"frame threshold {hv_spec['threshold']:.3g}")
        ax.legend(fontsize=8)
    ax.set(title="Heavy model reliability (frames it saw; n per bin)", xlabel="brand probability",
           ylabel="share with the right brand", xlim=(0, 1), ylim=(0, 1.02))
    fig.tight_layout()
    return fig


def _funnel_figure(days: list[dict]):
    import matplotlib.pyplot as plt

    from percolate.report import funnel_stages

    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    names = [n for n, _ in funnel_stages(days[0]["summary"])]
    totals = np.array([[c for _, c in funnel_stages(d["summary"])] for d in days]).sum(axis=0)
    ax = axes[0]
    ax.barh(range(len(names))[::-1], totals, color="tab:blue")
    ax.set_yticks(range(len(names))[::-1], names)
    ax.set_xscale("log")
    for y, v in zip(range(len(names))[::-1], totals):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.set(title=f"Cost funnel ({len(days)} days)", xlabel="count (log scale)")
    stages = ("sample_frames", "prefilter", "heavy", "publish")
    cpu = [sum(float(d["summary"].get(f"cpu_s_{s}") or 0) for d in days) for s in stages]
    ax = axes[1]
    ax.bar(stages, cpu, color="tab:orange")
    for x, v in enumerate(cpu):
        ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set(title="CPU seconds per stage (measured)", ylabel="CPU s")
    fig.tight_layout()
    return fig


def _table_html(out: dict) -> str:
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    rows = list(out["days"].items()) + [("pooled", out["pooled"])]
    head = ("<tr><th>day</th><th>true user-brands</th><th>user-day precision</th><th>user-day recall</th>"
            "<th>prefilter pass rate</th><th>heavy model runs</th><th>prefilter recall</th><th>heavy brand accuracy</th>"
            "<th>cascade precision</th><th>cascade recall</th><th>CPU s</th><th>targets</th></tr>")
    body = []
    for name, r in rows:
        u, f = r["user_day"], r["frame_level"]
        ok = r["targets"]["all_met"]
        body.append(
            f"<tr><td>{html.escape(name)}</td><td>{u['true_user_brands']}</td><td>{pct(u['precision'])}</td>"
            f"<td>{pct(u['recall'])}</td><td>{pct(f['prefilter']['pass_rate'])}</td><td>{pct(f['heavy']['run_rate'])}</td>"
            f"<td>{pct(f['prefilter']['recall'])}</td><td>{pct(f['heavy']['brand_accuracy_on_cup_frames'])}</td>"
            f"<td>{pct(f['cascade']['precision'])}</td><td>{pct(f['cascade']['recall'])}</td>"
            f"<td>{r['cpu_s']['total']:.0f}</td><td class='{'ok' if ok else 'bad'}'>{'met' if ok else 'missed'}</td></tr>")
    brands = out["pooled"]["user_day"]["per_brand"]
    brand_rows = "".join(
        f"<tr><td>{html.escape(b)}</td><td>{v['true']}</td><td>{v['predicted']}</td><td>{v['correct']}</td>"
        f"<td>{pct(v['precision'])}</td><td>{pct(v['recall'])}</td></tr>" for b, v in brands.items())
    fl = out["pooled"]["flops_per_sampled_frame"]
    flops = (f"<p>FLOPs per sampled frame: cascade {fl['cascade'] / 1e6:.2f} M vs heavy model alone "
             f"{fl['heavy_alone'] / 1e6:.2f} M ({fl['saving']}x less); prefilter {fl['prefilter'] / 1e6:.2f} M"
             f"{prefilter_max_note(fl)}.</p>" if fl.get("cascade") else "")
    by_bg = out["pooled"]["frame_level"]["prefilter"]["negatives_passed_by_background"]
    backgrounds = ""
    if by_bg:
        backgrounds = ("<h3>Frames without a cup that pass the prefilter, by background (pooled)</h3><table><tr>"
                       "<th>background</th><th>frames without a cup</th><th>passed</th><th>pass rate</th></tr>"
                       + "".join(f"<tr><td>{html.escape(str(b['background']))}</td><td>{b['frames']}</td>"
                                 f"<td>{b['passed']}</td><td>{pct(b['pass_rate'])}</td></tr>" for b in by_bg)
                       + "</table>")
    return (f"<table>{head}{''.join(body)}</table>{flops}{backgrounds}<h3>Per brand (pooled user-days)</h3><table><tr><th>brand"
            f"</th><th>true</th><th>predicted</th><th>correct</th><th>precision</th><th>recall</th></tr>"
            f"{brand_rows}</table>")


def write_report(path: Path, out: dict, days: list[dict], table: pd.DataFrame, daily: pd.DataFrame,
                 pf_spec: dict, hv_spec: dict) -> Path:
    """Write the standalone HTML report of an evaluation (see holdout.evaluate)."""
    import matplotlib

    matplotlib.use("Agg")
    rule = hv_spec.get("aggregation") or {"min_frames": 1, "min_score": hv_spec["threshold"]}
    t = out["targets"]
    sections = [
        f"<h1>Percolate held-out evaluation: {html.escape(', '.join(out['dates']))}</h1>",
        f"<p>Prefilter {html.escape(str(pf_spec['version']))} (threshold {pf_spec['threshold']:.4g}), heavy "
        f"{html.escape(str(hv_spec['version']))} (frame threshold {hv_spec['threshold']:.4g}, user-day rule "
        f"{html.escape(str(rule))}). Targets: user-day precision &ge; {t['precision']:.0%}, recall &ge; "
        f"{t['recall']:.0%}, share of sampled frames the heavy model runs on &le; {t['pass_rate']:.0%} (the "
        f"frames passing the prefilter, less those that reuse the heavy output of an unchanged input in the "
        f"same call).</p>",
        _table_html(out),
        "<h2>Precision-recall</h2>", png_img(_pr_figure(table, rule, pf_spec["threshold"], hv_spec["threshold"])),
        "<h2>Threshold calibration</h2>", png_img(_calibration_figure(table, pf_spec, hv_spec)),
        "<h2>Confusion matrix</h2>", png_img(_confusion_figure(table, list(hv_spec["class_names"]))),
        "<h2>Cost funnel</h2>", png_img(_funnel_figure(days)),
    ]
    style = ("body{font-family:sans-serif;margin:2em;max-width:1300px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}.ok{color:green}.bad{color:#b00}"
             "img{max-width:100%}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Percolate evaluation</title>"
                    f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")
    return path
