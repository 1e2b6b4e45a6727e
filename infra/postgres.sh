#!/usr/bin/env bash
# A PostgreSQL server on loopback for the shared Hive metastore (and Airflow's metadata).
#
#   infra/postgres.sh start    # install if missing, init, start; prints the settings to export
#   infra/postgres.sh install  # only install the Debian packages (CI does this before the tests)
#   infra/postgres.sh env      # print the settings only
#   infra/postgres.sh stop
#
# Debian's postgresql and libpostgresql-jdbc-java are installed when missing (as root:
# apt-get update, then install). The JDBC driver is linked into the virtualenv's Spark
# (pyspark/jars), so every Spark application (jobs, `percolate query`, the Thrift server)
# can reach the metastore without extra class-path options.
#
# Data lives in $PERCOLATE_PG_DIR (default var/postgres), the server listens on
# 127.0.0.1:$PERCOLATE_PG_PORT (default 5433). The role and password are for a loopback
# server; a real deployment sets PERCOLATE_METASTORE_URL to its own server instead.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:-start}"
port="${PERCOLATE_PG_PORT:-5433}"
data="${PERCOLATE_PG_DIR:-$here/var/postgres}"
user=percolate
password="${PERCOLATE_PG_PASSWORD:-percolate}"
reader=percolate_reader   # may only SELECT from the metastore: the analysts' Thrift server
reader_password="${PERCOLATE_PG_READER_PASSWORD:-percolate_reader}"

pg_bin() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [ -n "$bin" ] && echo "$bin"
}

install_packages() {
  if [ -z "$(pg_bin)" ] || [ ! -f /usr/share/java/postgresql.jar ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "need Debian's postgresql and libpostgresql-jdbc-java (apt-get install, as root)" >&2; exit 1
    fi
    echo "installing postgresql and libpostgresql-jdbc-java" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql libpostgresql-jdbc-java >&2
  fi
}

install_missing() {
  install_packages
  local jars
  jars="$("$here/.venv/bin/python" -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
  ln -sf /usr/share/java/postgresql.jar "$jars/postgresql.jar"
}

# run a PostgreSQL program as the owner of the data (the server refuses to run as root)
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

print_env() {
  echo "export PERCOLATE_METASTORE_URL=postgresql://$user:$password@127.0.0.1:$port/metastore"
  echo "export PERCOLATE_METASTORE_READER_URL=postgresql://$reader:$reader_password@127.0.0.1:$port/metastore"
  echo "export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://$user:$password@127.0.0.1:$port/airflow"
}

start() {
  install_missing
  local bin; bin="$(pg_bin)"
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$data" -A trust -U postgres >/dev/null
  fi
  if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qtA)
  if [ -z "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='$user'")" ]; then
    as_owner "${psql[@]}" -c "CREATE ROLE $user LOGIN PASSWORD '$password'"
  fi
  if [ -z "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='$reader'")" ]; then
    as_owner "${psql[@]}" -c "CREATE ROLE $reader LOGIN PASSWORD '$reader_password'"
  fi
  for db in metastore airflow; do
    if [ -z "$(as_owner "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$db'")" ]; then
      as_owner "${psql[@]}" -c "CREATE DATABASE $db OWNER $user"
    fi
  done
  # the metastore's tables, created once (Spark's lazy creation deadlocks on PostgreSQL)
  PERCOLATE_METASTORE_URL="postgresql://$user:$password@127.0.0.1:$port/metastore" \
    "$here/.venv/bin/python" -m percolate.io.metastore --grant-select "$reader" >&2
  echo "PostgreSQL on 127.0.0.1:$port (data: $data). Use it with:" >&2
  print_env
}

case "$cmd" in
  start) start ;;
  install) install_packages ;;
  env) print_env ;;
  stop)
    bin="$(pg_bin)"
    as_owner "$bin/pg_ctl" -D "$data" -m fast stop ;;
  *) echo "usage: $0 start|install|env|stop" >&2; exit 2 ;;
esac
