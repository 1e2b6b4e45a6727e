#!/usr/bin/env bash
# Airflow for real on the shared PostgreSQL: api-server (UI, REST), scheduler, dag-processor and
# triggerer with the LocalExecutor (workflows/services.py). Start PostgreSQL first:
#   eval "$(infra/postgres.sh start)"     # exports PERCOLATE_METASTORE_URL and Airflow's database
#   infra/airflow.sh start [PORT]         # then open http://127.0.0.1:PORT (default 8080)
#   infra/airflow.sh stop
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
action="${1:-start}"
port="${2:-8080}"
: "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:?set it to the PostgreSQL URL infra/postgres.sh prints}"
exec "$here/.venv/bin/python" -m workflows.services "$action" --port "$port"
