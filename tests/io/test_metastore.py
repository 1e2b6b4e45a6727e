"""The shared metastore's schema, and the role the analysts' Thrift server reads it as."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg2
import pytest

pytestmark = [pytest.mark.integration]


def connect(url: str):
    p = urlsplit(url)
    return psycopg2.connect(host=p.hostname, port=p.port, dbname=p.path.strip("/"), user=p.username,
                            password=p.password)


def test_the_reader_role_reads_every_metastore_table_and_writes_none(postgres):
    url = postgres.new_metastore()
    with connect(url) as owner, owner.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = sorted(r[0] for r in cur.fetchall())
    assert {"DBS", "TBLS", "PARTITIONS", "SDS"} <= set(tables)
    reader = connect(postgres.reader_url(url))
    try:
        with reader.cursor() as cur:
            for table in tables:
                cur.execute(f'SELECT count(*) FROM "{table}"')  # every table readable
            for statement in ('DELETE FROM "TBLS"', 'UPDATE "DBS" SET "NAME" = \'x\'',
                              'INSERT INTO "VERSION" ("VER_ID", "SCHEMA_VERSION", "VERSION_COMMENT") '
                              "VALUES (99, 'x', 'x')", 'DROP TABLE "PARTITIONS"', 'CREATE TABLE stolen (x int)'):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
                reader.rollback()
    finally:
        reader.close()
