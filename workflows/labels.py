"""`percolate labels import|simulate|export`: people's labels into the `labels` table.

`import` runs `jobs/import_labels.py` (one Spark job) on a CSV or Parquet file: checked row by
row, refused rows quarantined with a reason, the rest validated and written as one batch of
the arrival date. `simulate` makes a generated day's feedback from its ground truth and imports
it the same way, arriving the next day: the reorder button's clicks (most users ignore the
button, some press or dismiss it, a few wrongly) and the labels of the day's audit sample.
`export` writes a day's audit sample for people to label: one JPEG per frame and a CSV that,
its `brand` column filled in, `import --source audit` takes back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from percolate.core.layout import check_date
from percolate.core.settings import Settings


def default_batch(file: str | Path) -> str:
    """import-<sha256 of the file, 12 hex>: importing the same file again replaces its batch."""
    return "import-" + hashlib.sha256(Path(file).read_bytes()).hexdigest()[:12]


def import_file(settings: Settings, file: str | Path, date: str, source: str = "import",
                batch: str | None = None) -> dict:
    """Import one file as one batch of `date`'s labels; returns the job's result."""
    from jobs.import_labels import read_labels_file, result_path
    from percolate.transforms.labels import require_columns
    from workflows.launch import spark_submit

    file = Path(file).resolve()
    require_columns(read_labels_file(str(file), header_only=True).columns)  # refused before Spark starts
    batch = batch or default_batch(file)
    result = result_path(settings, date, batch)
    result.unlink(missing_ok=True)
    spark_submit(settings, "import_labels", ["--date", check_date(date), "--run-id", batch, "--file", str(file),
                                             "--batch", batch, "--source", source], f"labels-{date}-{batch}")
    return json.loads(result.read_text())


AUDIT_COLUMNS = ["call_id", "user_id", "frame_index", "ts_ms", "stratum", "label", "score", "run_id"]


def published_day(settings: Settings, day: str):
    """(the confirmed user_brand_daily rows, the audit_frames rows) of a published day, from one
    query process."""
    import pandas as pd

    from workflows.query import read_tables

    daily, audit = read_tables(settings, [
        f"SELECT user_id, brand FROM user_brand_daily WHERE dt = '{check_date(day)}' AND confirmed",
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_frames WHERE dt = '{check_date(day)}' "
        f"ORDER BY call_id, frame_index"])
    return pd.DataFrame(daily, columns=["user_id", "brand"]), pd.DataFrame(audit, columns=AUDIT_COLUMNS)


def audit_sample(settings: Settings, day: str):
    """The published audit_frames rows of `day` (a DataFrame)."""
    return published_day(settings, day)[1]


def simulated_clicks(settings: Settings, day: str, daily, seed: int = 0):
    """The reorder button's clicks on `day`'s confirmed detections (`daily`), from its ground truth."""
    from percolate.io.store import open_store
    from percolate.transforms.labels import simulate_reorder_button
    from synth.truth import load_truth

    truth = load_truth(open_store(settings.store_uri, settings.s3_endpoint_url), day)
    pairs = {(call["user_id"], cup["brand"]) for call in truth["calls"] for cup in call.get("cups", ())}
    return simulate_reorder_button(daily, pairs, day, seed=seed)


def truth_audit_labels(settings: Settings, day: str, sample, seed: int = 0):
    """The labels a careful person gives `day`'s audit frames (`sample`), from the generator's
    truth: the brand in view, or NO_BRAND; given during the next day."""
    import random

    import pandas as pd

    from percolate.core.tables import NO_BRAND
    from percolate.io.store import open_store
    from synth import label_at, load_truth

    calls = {c["call_id"]: c for c in load_truth(open_store(settings.store_uri, settings.s3_endpoint_url),
                                                   day)["calls"]}
    rng = random.Random(f"audit/{seed}/{day}")
    start = dt.datetime.fromisoformat(day) + dt.timedelta(days=1)
    brands = [label_at(calls[c], t / 1000.0) or NO_BRAND for c, t in zip(sample["call_id"], sample["ts_ms"])]
    return pd.DataFrame({
        "user_id": sample["user_id"], "day": day, "call_id": sample["call_id"], "frame_index": sample["frame_index"],
        "brand": brands, "verdict": "confirmed", "source": "audit",
        "known_at": [(start + dt.timedelta(seconds=rng.randrange(0, 20 * 3600))).isoformat() + "Z"
                     for _ in range(len(sample))]})


def export_audit(settings: Settings, day: str, out: str | Path) -> dict:
    """Write `day`'s audit frames for labelling: <out>/frames/<call>-<frame>.jpg and
    <out>/audit-<day>.csv (brand empty: fill in a class, or `none`)."""
    from percolate.core.layout import FRAMES, SAMPLE_FRAMES
    from percolate.io.stage import open_stage

    sample = audit_sample(settings, day)
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    written = 0
    for run_id, rows in sample.groupby("run_id"):
        frames = open_stage(settings, run_id).read_pandas(SAMPLE_FRAMES, day, FRAMES,
                                                          ["call_id", "frame_index", "jpeg"])
        wanted = frames.merge(rows[["call_id", "frame_index"]], on=["call_id", "frame_index"])
        for call_id, index, jpeg in zip(wanted["call_id"], wanted["frame_index"], wanted["jpeg"]):
            (out / "frames" / f"{call_id}-{int(index)}.jpg").write_bytes(jpeg)
            written += 1
    sheet = sample.assign(day=day, image=[f"frames/{c}-{int(i)}.jpg" for c, i in
                                          zip(sample["call_id"], sample["frame_index"])],
                          model_guess=sample["label"], brand="", verdict="confirmed", source="audit")
    path = out / f"audit-{day}.csv"
    sheet[["user_id", "day", "call_id", "frame_index", "ts_ms", "stratum", "image", "model_guess", "brand",
           "verdict", "source"]].to_csv(path, index=False)
    return {"date": day, "frames": len(sample), "images": written, "csv": str(path)}


def corrupt(labels, share: float, brands: list[str], seed: int = 0):
    """The labels with the brand of `share` of those naming one swapped for another brand
    (what a broken labelling tool or a bad import does; the retrain's gates must refuse it)."""
    import numpy as np

    if share <= 0 or labels.empty:
        return labels
    rng = np.random.default_rng(seed)
    out = labels.copy()
    named = np.flatnonzero(out["brand"].isin(brands).to_numpy())
    for i in rng.choice(named, int(round(share * len(named))), replace=False):
        others = [b for b in brands if b != out.at[out.index[i], "brand"]]
        out.at[out.index[i], "brand"] = others[int(rng.integers(len(others)))]
    return out


def simulate(settings: Settings, day: str, seed: int = 0, corrupt_share: float = 0.0) -> dict:
    """Simulate `day`'s feedback from its ground truth and import it, arriving the next day:
    the reorder-button clicks and the audit sample's labels (each row names its source), as
    batch feedback-<day>; `corrupt_share` of the labels get a wrong brand (see corrupt)."""
    import pandas as pd

    folder = settings.reports_dir / "labels" / "simulated"
    folder.mkdir(parents=True, exist_ok=True)
    arrived = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    from percolate.io.registry import open_registry

    brands = list(open_registry(settings).spec("heavy", "production")["class_names"])
    daily, sample = published_day(settings, day)
    clicks = corrupt(simulated_clicks(settings, day, daily, seed), corrupt_share, brands, seed)
    audit = corrupt(truth_audit_labels(settings, day, sample, seed), corrupt_share, brands, seed + 1)
    path = folder / f"feedback-{day}.csv"
    pd.concat([clicks, audit], ignore_index=True).to_csv(path, index=False)
    out = import_file(settings, path, arrived, batch=f"feedback-{day}")
    return dict(out, clicks=len(clicks), audited=len(audit))


def format_import(out: dict) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(out["reasons"].items())) or "none"
    return (f"batch {out['batch']} of {out['date']}: {out['rows']} rows, {out['accepted']} labels "
            f"({', '.join(f'{k} {v}' for k, v in sorted(out['by_verdict'].items())) or 'none'}), "
            f"{out['quarantined']} quarantined ({reasons}); see tables labels and label_quarantine")
