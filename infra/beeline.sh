#!/usr/bin/env bash
# beeline (the JDBC client that comes with pyspark) with SPARK_HOME set to the virtualenv's
# pyspark, which beeline needs to find its jars:
#   infra/beeline.sh -u jdbc:hive2://127.0.0.1:10000/percolate -n analyst -e "SHOW TABLES"
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
SPARK_HOME="$("$here/.venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
export SPARK_HOME
exec "$here/.venv/bin/beeline" "$@"
