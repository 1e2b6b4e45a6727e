#!/usr/bin/env bash
# The analysts' read-only JDBC/ODBC endpoint: Spark's Thrift server over the shared catalog
# (workflows/thrift_server.py says what keeps it read-only). Start PostgreSQL first:
#   eval "$(infra/postgres.sh start)"   # exports PERCOLATE_METASTORE_URL and ..._READER_URL
#   infra/thrift.sh start [PORT]        # default 10000, loopback only
#   infra/beeline.sh -u jdbc:hive2://127.0.0.1:10000/percolate -n analyst
#   infra/thrift.sh stop
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
action="${1:-start}"
port="${2:-10000}"
exec "$here/.venv/bin/python" -m workflows.thrift_server "$action" --port "$port"
