"""`percolate labels import|simulate`: people's labels into the `labels` table.

`import` runs `jobs/import_labels.py` (one Spark job) on a CSV or Parquet file: checked row by
row, refused rows quarantined with a reason, the rest validated and written as one batch of
the arrival date. `simulate` makes the reorder button's clicks for a generated day from its
ground truth (most users ignore the button, some press or dismiss it, a few wrongly) and
imports them the same way, arriving the next day.
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


def simulated_clicks(settings: Settings, day: str, seed: int = 0):
    """The reorder button's clicks on `day`'s confirmed detections, from the day's ground truth."""
    from percolate.io.store import open_store
    from percolate.transforms.labels import simulate_reorder_button
    from synth.truth import load_truth
    from workflows.query import default_engine, query_here

    import pandas as pd

    truth = load_truth(open_store(settings.store_uri, settings.s3_endpoint_url), day)
    pairs = {(call["user_id"], cup["brand"]) for call in truth["calls"] for cup in call.get("cups", ())}
    rows = query_here(settings, [f"SELECT user_id, brand FROM user_brand_daily WHERE dt = '{check_date(day)}' "
                                 f"AND confirmed"], read_only=True, engine=default_engine(settings))[0]
    return simulate_reorder_button(pd.DataFrame(rows, columns=["user_id", "brand"]), pairs, day, seed=seed)


def simulate(settings: Settings, day: str, seed: int = 0) -> dict:
    """Simulate `day`'s reorder-button clicks and import them as batch reorder_button-<day>,
    arriving the next day."""
    clicks = simulated_clicks(settings, day, seed)
    folder = settings.reports_dir / "labels" / "simulated"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"reorder_button-{day}.csv"
    clicks.to_csv(path, index=False)
    arrived = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    out = import_file(settings, path, arrived, source="reorder_button", batch=f"reorder_button-{day}")
    return dict(out, clicks=len(clicks))


def format_import(out: dict) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(out["reasons"].items())) or "none"
    return (f"batch {out['batch']} of {out['date']}: {out['rows']} rows, {out['accepted']} labels "
            f"({', '.join(f'{k} {v}' for k, v in sorted(out['by_verdict'].items())) or 'none'}), "
            f"{out['quarantined']} quarantined ({reasons}); see tables labels and label_quarantine")
