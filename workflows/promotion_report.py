"""The promotion decision as a page people read: the gates, champion and challenger side by
side (user-day precision and recall with their 95% intervals, each brand's recall, cost per
frame), the decision and why; links to both evaluations' own reports (their PR curves).
Written for every `percolate models promote`, promoted or refused, with its JSON beside it."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

from workflows.eval_report import png_img

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
         ".ok{background:#e6f4e6}.bad{background:#fbe3e3}")


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _ci(e: dict | None, key: str) -> str:
    if not e or not e.get(f"{key}_ci"):
        return "-"
    lo, hi = e[f"{key}_ci"]
    return f"{_pct(e.get(key))} [{_pct(lo)}, {_pct(hi)}]"


def _figure(champion: dict | None, challenger: dict, gates: dict | None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    models = [("champion", champion, "tab:grey"), ("challenger", challenger, "tab:blue")]
    ax = axes[0]
    for i, (name, e, colour) in enumerate(models):
        if not e:
            continue
        for j, key in enumerate(("precision", "recall")):
            if e.get(key) is None or not e.get(f"{key}_ci"):
                continue
            lo, hi = e[f"{key}_ci"]
            x = j + (i - 0.5) * 0.3
            ax.bar(x, e[key], 0.28, color=colour, label=name if j == 0 else None)
            ax.errorbar(x, e[key], yerr=[[max(0.0, e[key] - lo)], [max(0.0, hi - e[key])]], color="black", capsize=4)
    ax.set_xticks([0, 1], ["user-day precision", "user-day recall"])
    ax.set_ylim(0.8, 1.0)
    lines = [(k, (gates or {}).get(k), c) for k, c in (("min_precision_lower95", "tab:red"), ("min_recall", "tab:orange"))]
    for name, value, colour in lines:
        if value is not None:
            ax.axhline(value, color=colour, lw=0.8, ls="--", label=f"gate {name} {value:g}")
    ax.set_title("user-day figures with their 95% intervals")
    ax.legend(loc="lower left", fontsize="small")
    ax = axes[1]
    brands = sorted(set(challenger.get("brand_recall", {})) | set((champion or {}).get("brand_recall", {})))
    x = np.arange(len(brands))
    for i, (name, e, colour) in enumerate(models):
        if e:
            ax.bar(x + (i - 0.5) * 0.4, [e["brand_recall"].get(b) or 0 for b in brands], 0.38, color=colour, label=name)
    ax.set_xticks(x, brands, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("recall per brand")
    ax.legend(loc="lower right")
    return fig


def _training_set(t: dict | None) -> str:
    """A retrain's training set: where its labels came from and what its checks found."""
    if not t:
        return ""
    sources = ", ".join(f"{html.escape(str(k))} {v}" for k, v in sorted(t["labels_by_source"].items())) or "none"
    brands = ", ".join(f"{html.escape(k)} {v}" for k, v in sorted(t["class_balance"]["per_brand"].items()))
    return (f"<h2>Training set</h2><p>{t['feedback_frames']} feedback frames from {t['labels']} labels ({sources}) "
            f"of {len(t['days'])} days, {t['base_frames']} base frames. Positive frames per brand: {brands or '-'}; "
            f"negatives {t['class_balance']['negatives']}. Labels agreeing with the champion's confident outputs: "
            f"{t['label_agreement']['agree']} of {t['label_agreement']['judged']}. Frames left out for disagreeing "
            f"labels: {t['conflicts']['frames']}.</p>")


def _shadow(s: dict | None) -> str:
    """Where champion and challenger disagree on the latest nightly date (shadow scoring)."""
    if not s:
        return ""
    rows = "".join(f"<tr><td>{html.escape(str(r.get('user_id')))}</td><td>{html.escape(str(r.get('brand')))}</td>"
                   f"<td>{r.get('champion_confirmed')}</td><td>{r.get('challenger_confirmed')}</td>"
                   f"<td>{r.get('champion_frames')}</td><td>{r.get('challenger_frames')}</td></tr>"
                   for r in s.get("disagreements", [])[:200])
    return (f"<h2>Shadow scoring of {html.escape(str(s.get('date')))}</h2><p>The challenger scored the latest published "
            f"nightly date beside the champion: {len(s.get('disagreements', []))} user-brands where they disagree"
            f"{'' if rows else ' (none)'}.</p>" + (f"<table><tr><th>user</th><th>brand</th><th>champion</th>"
                                                   f"<th>challenger</th><th>champion frames</th><th>challenger "
                                                   f"frames</th></tr>{rows}</table>" if rows else ""))


def write_promotion_report(folder: Path, out: dict) -> Path:
    """The decision's HTML page and JSON, named by time and pair; returns the page's path."""
    folder.mkdir(parents=True, exist_ok=True)
    when = dt.datetime.now(dt.timezone.utc)
    pair = out["to"]
    stem = f"{when:%Y%m%dT%H%M%SZ}-{pair['prefilter']}+{pair['heavy']}"
    (folder / f"{stem}.json").write_text(json.dumps(out, indent=2, default=str))
    d, ch, cp = out["decision"], out["challenger"], out["champion"]
    verdict = ("PROMOTED" + (" (FORCED past failed gates)" if out["forced"] else "")) if out["promoted"] \
        else "REFUSED: production unchanged"
    rows = "".join(
        f"<tr class='{'ok' if g['passed'] else 'bad'}'><td>{html.escape(g['gate'])}</td>"
        f"<td>{'pass' if g['passed'] else 'FAIL'}</td><td>{html.escape(str(g['value']))}</td>"
        f"<td>{html.escape(str(g['limit']))}</td><td>{html.escape(g['why'])}</td></tr>" for g in d["gates"])
    figures = [("days", lambda e: ", ".join(e["dates"])), ("true user-brands", lambda e: e["true_user_brands"]),
               ("predicted user-brands", lambda e: e["predicted_user_brands"]),
               ("user-day precision [95%]", lambda e: _ci(e, "precision")),
               ("user-day recall [95%]", lambda e: _ci(e, "recall")),
               ("FLOPs per sampled frame", lambda e: f"{(e.get('flops_per_frame') or 0) / 1e6:.2f} M"),
               ("prefilter pass rate", lambda e: _pct(e.get("prefilter_pass_rate"))),
               ("heavy-model run rate", lambda e: _pct(e.get("heavy_run_rate"))),
               ("model CPU ms per sampled frame", lambda e: "-" if e.get("model_cpu_s_per_frame") is None
                else f"{e['model_cpu_s_per_frame'] * 1000:.2f}"),
               ("evaluation report", lambda e: f"<a href='file://{html.escape(e['report'])}'>open</a>"
                                               if e.get("report") else "-")]
    side = "".join(f"<tr><td>{name}</td><td>{f(cp) if cp else '-'}</td><td>{f(ch) if ch else '-'}</td></tr>"
                   for name, f in figures)
    plot = png_img(_figure(cp, ch, d.get("configured"))) if ch else "<p>No evaluation of the challenger: nothing to plot.</p>"
    plot += _training_set(out.get("training_set")) + _shadow(out.get("shadow"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Promotion {stem}</title>"
            f"<style>{STYLE}</style></head><body><h1>Promotion of {out['alias']}: {verdict}</h1>"
            f"<p>{when:%Y-%m-%d %H:%M} UTC. Champion: prefilter {out['from']['prefilter']}, heavy "
            f"{out['from']['heavy']}. Challenger: prefilter {pair['prefilter']}, heavy {pair['heavy']}.</p>"
            f"<p><b>Decision:</b> {html.escape(d['why'])}</p><h2>Gates</h2><table><tr><th>gate</th><th>verdict</th>"
            f"<th>value</th><th>limit</th><th>why</th></tr>{rows}</table><h2>Side by side</h2><table><tr><th></th>"
            f"<th>champion</th><th>challenger</th></tr>{side}</table>{plot}</body></html>")
    path = folder / f"{stem}.html"
    path.write_text(page)
    return path
