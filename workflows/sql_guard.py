"""What an analyst's statement may do: read. Checked before any engine sees it.

`percolate query` runs with the pipeline's own rights (its store credentials, its warehouse),
so it answers one read-only statement and refuses the rest with a message that says why:
statements that write or change settings (INSERT, DROP, SET, ADD JAR, ...), more than one
statement, and the functions that call into the JVM (`reflect`, `java_method`), which would
read environment variables such as credentials. Reading files by path (`parquet.`/path``)
is turned off in the session itself (`spark.sql.runSQLOnFiles`).

The check works on tokens outside string literals, quoted identifiers and comments, so a
string or a backticked column may contain any word. It is deliberately strict: a word on
the list anywhere else refuses the statement (quote such a column name in backticks).
"""

from __future__ import annotations

import re

READ_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN")
WRITE_WORDS = frozenset("""
    INSERT UPDATE DELETE MERGE CREATE DROP ALTER TRUNCATE REPLACE LOAD MSCK REPAIR RECOVER
    REFRESH CACHE UNCACHE CLEAR SET RESET ADD GRANT REVOKE ANALYZE USE COPY EXPORT IMPORT
    INSTALL ATTACH DETACH PRAGMA CALL EXECUTE
""".split())
JVM_FUNCTIONS = frozenset({"REFLECT", "JAVA_METHOD", "TRY_REFLECT"})

_LEXEME = re.compile(r"""
    (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<semicolon>;)
  | (?P<open>\()
""", re.VERBOSE | re.DOTALL)


class NotReadOnly(ValueError):
    """The statement would do more than read."""


def words(sql: str) -> list[str]:
    """The statement's bare words (upper case), `;` and `(`, outside strings, quotes and comments."""
    out = []
    for m in _LEXEME.finditer(sql):
        if m.lastgroup == "word":
            out.append(m.group().upper())
        elif m.lastgroup in ("semicolon", "open"):
            out.append(m.group())
    return out


def check_read_only(sql: str) -> str:
    """The statement without a trailing `;`, or NotReadOnly saying what was refused."""
    statement = sql.strip().rstrip(";").strip()
    tokens = words(sql)
    while tokens and tokens[-1] == ";":
        tokens.pop()
    if not tokens:
        raise NotReadOnly("no statement to run")
    if ";" in tokens:
        raise NotReadOnly("one statement at a time: the query holds more than one (a `;` in the middle)")
    if tokens[0] not in READ_STATEMENTS:
        raise NotReadOnly(f"`percolate query` only reads: {tokens[0]} statements are refused "
                          f"(allowed: {', '.join(s for s in READ_STATEMENTS if s != 'DESC')})")
    if tokens[0] in ("SHOW", "DESCRIBE", "DESC"):  # they cannot write (SHOW CREATE TABLE reads)
        return statement
    writes = sorted({t for t in tokens if t in WRITE_WORDS})
    if writes:
        raise NotReadOnly(f"`percolate query` only reads: refused because it contains {', '.join(writes)} "
                          f"(a column with that name can be written in backticks)")
    calls = sorted({t for t, nxt in zip(tokens, tokens[1:] + [""]) if t in JVM_FUNCTIONS and nxt == "("})
    if calls:
        raise NotReadOnly(f"refused: {', '.join(c.lower() for c in calls)}() calls into the JVM with the "
                          f"pipeline's rights (it can read environment variables and files)")
    return statement
