"""Spark job: a weekly retrain's evaluations and decision (`workflows.retrain.evaluation_rows`,
a JSON file) as one batch of the `model_evaluations` table (dt --date, batch retrain-<date>;
a rerun of the date replaces it)."""

from __future__ import annotations

import datetime as dt
import json
import sys

from jobs.common import new_parser
from percolate.core.settings import Settings
from percolate.core.tables import WAREHOUSE, spark_schema
from percolate.io.spark import get_spark
from percolate.io.warehouse import open_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("Record a retrain's evaluations in the model_evaluations table.")
    parser.add_argument("--rows", required=True, help="JSON file: a list of model_evaluations rows")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    columns = WAREHOUSE["model_evaluations"]
    cast = {"double": float, "int": int, "boolean": bool, "string": str, "timestamp": dt.datetime.fromisoformat}
    rows = [tuple(None if r.get(c.name) is None else cast[c.type](r[c.name]) for c in columns)
            for r in json.loads(open(args.rows).read())]
    spark = get_spark(f"percolate-record-evaluations-{args.date}", settings)
    warehouse = open_warehouse(spark, settings)
    warehouse.ensure_tables()
    df = spark.createDataFrame(rows, spark_schema(columns))
    warehouse.put_batch("model_evaluations", df, args.date, f"retrain-{args.date}",
                        retention=dt.timedelta(hours=settings.publish_retention_hours))
    print(f"[percolate] model_evaluations for {args.date}: {len(rows)} rows", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
