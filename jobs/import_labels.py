"""Spark job: load a file of labels (CSV or Parquet) into the `labels` table as one batch.

Every row is checked against what the warehouse knows (`percolate.transforms.labels`: known
brands, known user-days and frames, no duplicates, nothing from the future); the accepted
rows pass the `labels` expectation suite and become the batch's rows of `labels` (partition
dt = the arrival date), the refused ones the batch's rows of `label_quarantine`, each with a
reason code. Re-importing a batch replaces it whole. The result (counts per reason) is
written to `reports/labels/dt=<date>/<batch>.json`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pandas as pd

from jobs.common import Stopwatch, new_parser
from percolate.core.layout import check_date
from percolate.core.settings import Settings
from percolate.core.tables import LABEL_SOURCES, NO_BRAND, WAREHOUSE, spark_schema
from percolate.io.spark import get_spark
from percolate.io.warehouse import check_batch, open_warehouse
from percolate.transforms.labels import DATE_PATTERN, check_labels


def read_labels_file(path: str, header_only: bool = False) -> pd.DataFrame:
    """The file's rows as strings (CSV) or as stored (Parquet), or only its columns with
    `header_only`; a clear error if unreadable."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no such labels file: {path}")
    try:
        if file.suffix.lower() in (".parquet", ".pq"):
            if header_only:
                import pyarrow.parquet as pq

                return pd.DataFrame(columns=pq.read_schema(file).names)
            return pd.read_parquet(file)
        return pd.read_csv(file, dtype=str, keep_default_na=False, nrows=0 if header_only else None)
    except Exception as exc:  # noqa: BLE001 - any parse error is the file's fault: say so
        raise ValueError(f"cannot read {path} as {'Parquet' if file.suffix.lower() in ('.parquet', '.pq') else 'CSV'}"
                         f": {exc}") from None


def spark_rows(df: pd.DataFrame) -> list[tuple]:
    """pandas rows as tuples Spark takes: missing values as None, timestamps as datetimes."""
    out = []
    for record in df.astype(object).to_dict("records"):
        out.append(tuple(None if v is None or (not isinstance(v, str) and pd.isna(v))
                         else v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in record.values()))
    return out


def result_path(settings: Settings, date: str, batch: str) -> Path:
    return settings.reports_dir / "labels" / f"dt={check_date(date)}" / f"{check_batch(batch)}.json"


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Import a file of labels into the labels table as one batch.")
    parser.add_argument("--file", required=True, help="CSV or Parquet: user_id, day, brand, verdict "
                                                      "[, call_id, frame_index, source, known_at]")
    parser.add_argument("--batch", required=True, help="the batch it becomes (re-importing replaces it)")
    parser.add_argument("--source", default="import", choices=LABEL_SOURCES, help="for rows that name none")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    watch = Stopwatch()
    raw = read_labels_file(args.file)

    from percolate.handover import check
    from percolate.io.registry import open_registry

    brands = list(open_registry(settings).spec("heavy", "production")["class_names"])
    spark = get_spark(f"percolate-labels-{args.batch}", settings)
    warehouse = open_warehouse(spark, settings)
    warehouse.ensure_tables()
    days = sorted({str(d) for d in raw.get("day", pd.Series(dtype=str)) if DATE_PATTERN.match(str(d))})
    listed = ", ".join(f"'{d}'" for d in days) or "''"
    calls = spark.sql(f"SELECT call_id, user_id, dt AS day, status, sampled_frames FROM "
                      f"{warehouse.table('calls')} WHERE dt IN ({listed})").toPandas()
    labels, refused = check_labels(raw, arrived=args.date, brands=brands, calls=calls, default_source=args.source)
    if len(labels):
        check(settings, "labels", args.date, args.batch, data=labels, class_names=[*brands, NO_BRAND])
    for table, rows in (("labels", labels), ("label_quarantine", refused)):
        df = spark.createDataFrame(spark_rows(rows), spark_schema(WAREHOUSE[table]))
        warehouse.put_batch(table, df, args.date, args.batch,
                            retention=dt.timedelta(hours=settings.publish_retention_hours))
    result = {"date": args.date, "batch": args.batch, "file": args.file, "rows": len(raw),
              "accepted": len(labels), "quarantined": len(refused),
              "by_verdict": labels["verdict"].value_counts().to_dict(),
              "reasons": refused["reason"].value_counts().to_dict(),
              "examples": refused.head(5).to_dict("records"), "seconds": watch.seconds}
    path = result_path(settings, args.date, args.batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"[percolate] labels {args.batch} for {args.date}: {len(labels)} accepted, {len(refused)} quarantined "
          f"{result['reasons']}", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
