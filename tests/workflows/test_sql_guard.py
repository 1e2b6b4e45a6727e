"""`percolate query` reads and nothing else: the guard in front of every engine."""

import pytest

from analysts_queries import analysts_queries
from workflows.cli import main as cli_main
from workflows.sql_guard import NotReadOnly, check_read_only

READS = [
    "SELECT brand, count(*) FROM user_brand_daily WHERE dt = '2026-11-20' GROUP BY brand",
    "  select * from frame_predictions limit 5;  ",
    "WITH t AS (SELECT * FROM quarantine) SELECT reason, count(*) FROM t GROUP BY reason",
    "SHOW TABLES", "SHOW PARTITIONS frame_predictions", "SHOW CREATE TABLE pipeline_runs",
    "DESCRIBE TABLE EXTENDED frame_predictions", "DESC quarantine",
    "EXPLAIN SELECT * FROM pipeline_runs",
    "SELECT 'drop table x; insert' AS note, `update` FROM t -- DROP TABLE in a comment",
    "SELECT /* set x = 1; */ 1",
    "SELECT reflection_notes FROM t",  # a column whose name starts like a JVM function
]

REFUSED = {
    "DROP TABLE frame_predictions": "DROP statements are refused",
    "drop table frame_predictions": "DROP statements are refused",
    "INSERT INTO pipeline_runs SELECT * FROM pipeline_runs": "INSERT statements are refused",
    "SET spark.sql.runSQLOnFiles=true": "SET statements are refused",
    "ADD JAR /tmp/x.jar": "ADD statements are refused",
    "CREATE TABLE x AS SELECT 1": "CREATE statements are refused",
    "SELECT 1; DROP TABLE frame_predictions": "one statement at a time",
    "WITH t AS (SELECT 1) INSERT INTO pipeline_runs SELECT * FROM t": "contains INSERT",
    "SELECT reflect('java.lang.System', 'getenv', 'AWS_SECRET_ACCESS_KEY')": "reflect() calls into the JVM",
    "SELECT java_method('java.lang.System', 'getenv')": "java_method() calls into the JVM",
    "select REFLECT ('java.lang.System','getenv')": "reflect() calls into the JVM",
    "EXPLAIN INSERT INTO t SELECT 1": "contains INSERT",
    "": "no statement",
    "-- only a comment": "no statement",
}


@pytest.mark.parametrize("sql", READS)
def test_reads_pass_unchanged_but_for_a_trailing_semicolon(sql):
    assert check_read_only(sql) == sql.strip().rstrip(";").strip()


@pytest.mark.parametrize("sql,why", REFUSED.items())
def test_anything_else_is_refused_with_the_reason(sql, why):
    with pytest.raises(NotReadOnly, match=why.replace("(", r"\(").replace(")", r"\)")):
        check_read_only(sql)


def test_the_cli_refuses_before_starting_spark(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERCOLATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERCOLATE_STORE", str(tmp_path / "store"))
    assert cli_main(["query", "DROP TABLE frame_predictions"]) == 1
    err = capsys.readouterr().err
    assert "percolate query: error: `percolate query` only reads: DROP statements are refused" in err
    assert not (tmp_path / "home").exists()  # no session, no metastore, nothing written


def test_the_example_queries_for_analysts_are_read_only():
    queries = analysts_queries()
    assert len(queries) == 8
    for sql in queries:
        assert check_read_only(sql) == sql
