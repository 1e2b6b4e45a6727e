"""Creating the schema of a shared (PostgreSQL) Hive metastore, once, before any Spark application.

Spark's built-in Hive 2.3 client can create the metastore's tables lazily, but on PostgreSQL
that deadlocks: DataNucleus creates a missing table (TBL_PRIVS, say) on a second connection
while the first holds a lock on the table it references, and both wait forever. So the whole
schema is created up front by DataNucleus' own SchemaTool, from the mapping (`package.jdo`)
inside Spark's hive-metastore jar, with the identifier settings Hive uses. Spark then runs
with schema creation off (`percolate.io.spark.metastore_conf`).

    python -m percolate.io.metastore [--grant-select ROLE]   # uses PERCOLATE_METASTORE_URL; idempotent

`--grant-select ROLE` lets a role read every metastore table and write none: the analysts'
Thrift server connects as such a role (`infra/postgres.sh` creates `percolate_reader`), so a
DROP or an ALTER that got past its guard would still fail in the database.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from percolate.core.settings import Settings


def spark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def jdo_properties(settings: Settings) -> dict[str, str]:
    """The metastore's connection as DataNucleus properties (from `spark.hadoop.*` options)."""
    from percolate.io.spark import metastore_conf

    conf = {k.removeprefix("spark.hadoop."): v for k, v in metastore_conf(settings).items()}
    return {
        **{k: v for k, v in conf.items() if k.startswith("javax.jdo.option.")},
        # what Hive's ObjectStore uses, so the tables match what the client expects
        "datanucleus.identifierFactory": "datanucleus1",
        "datanucleus.rdbms.useLegacyNativeValueStrategy": "true",
        "datanucleus.storeManagerType": "rdbms",
    }


def init_schema(settings: Settings) -> str:
    """Create every metastore table that is missing; returns SchemaTool's last line."""
    if not settings.metastore_url:
        raise ValueError("PERCOLATE_METASTORE_URL is not set: the embedded Derby metastore needs no setup")
    jars = spark_jars()
    if not (jars / "postgresql.jar").exists() and not glob.glob(str(jars / "postgresql*.jar")):
        raise RuntimeError(f"no PostgreSQL JDBC driver in {jars}: run infra/postgres.sh start "
                           "(or link libpostgresql-jdbc-java's postgresql.jar there)")
    metastore_jar = next(iter(sorted(jars.glob("hive-metastore-*.jar"))), None)
    if metastore_jar is None:
        raise RuntimeError(f"no hive-metastore jar in {jars}")
    with tempfile.TemporaryDirectory(prefix="percolate-metastore-") as tmp:
        with zipfile.ZipFile(metastore_jar) as jar:
            jar.extract("package.jdo", tmp)
        props = Path(tmp) / "datanucleus.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in jdo_properties(settings).items()))
        os.chmod(props, 0o600)  # holds the password
        java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME") else "java"
        out = subprocess.run([str(java), "-cp", f"{jars}/*", "org.datanucleus.store.schema.SchemaTool",
                              "-create", "-api", "JDO", "-props", str(props), "package.jdo"],
                             cwd=tmp, capture_output=True, text=True, timeout=600)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    if out.returncode != 0 or not any("completed successfully" in line for line in lines):
        raise RuntimeError("creating the metastore schema failed:\n" + "\n".join(lines[-20:]))
    return lines[-1]


def grant_select(settings: Settings, role: str) -> None:
    """Let `role` (an existing PostgreSQL role) SELECT every metastore table, and nothing more."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(settings.metastore_url)
    con = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, dbname=parts.path.strip("/"),
                           user=unquote(parts.username or ""), password=unquote(parts.password or ""))
    try:
        with con, con.cursor() as cur:
            who = sql.Identifier(role)
            cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(parts.path.strip("/")), who))
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who))
            cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(who))
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create the shared metastore's schema (idempotent).")
    parser.add_argument("--grant-select", metavar="ROLE", help="then let ROLE read (only read) every table")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    print(init_schema(settings))
    if args.grant_select:
        grant_select(settings, args.grant_select)
    return 0


if __name__ == "__main__":
    sys.exit(main())
