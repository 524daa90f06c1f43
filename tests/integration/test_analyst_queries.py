"""Analysts' read-only SQL on the real engine: formats, and every way a query is refused."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analytics.analyst import AnalystQueries, QueryRefused
from analytics.store import AnalyticsStore
from analytics.synthetic import SyntheticHistory
from schemas.analytics import ResultFormat
from tests.integration.conftest import store_with_history


@pytest.fixture(scope="module")
def store(chdb_dir: Path) -> Iterator[AnalyticsStore]:
    with store_with_history(
        chdb_dir,
        SyntheticHistory(
            operations=40, sponsors=3, sizes=(10, 100), since=datetime.now(UTC) - timedelta(days=7)
        ),
    ) as opened:
        yield opened


@pytest.fixture(scope="module")
def analyst(store: AnalyticsStore) -> AnalystQueries:
    return AnalystQueries.open(store.connection, max_rows=1000, max_seconds=2)


def test_json_csv_and_parquet_answers(analyst: AnalystQueries) -> None:
    sql = "SELECT channel, count() AS sends FROM v1_sends GROUP BY channel ORDER BY channel"
    body = json.loads(analyst.run(sql, ResultFormat.JSON))
    assert [c["name"] for c in body["meta"]] == ["channel", "sends"]
    assert {row["channel"] for row in body["data"]} <= {"SMS", "WhatsApp", "Email"}
    assert all(isinstance(row["sends"], int) for row in body["data"])  # not quoted strings
    rows = list(csv.reader(io.StringIO(analyst.run(sql, ResultFormat.CSV).decode())))
    assert rows[0] == ["channel", "sends"] and len(rows) == len(body["data"]) + 1
    table = pq.read_table(io.BytesIO(analyst.run(sql, ResultFormat.PARQUET)))
    assert table.num_rows == len(body["data"])


def test_csv_cells_cannot_run_as_formulas(analyst: AnalystQueries) -> None:
    sql = "SELECT '=HYPERLINK(\"http://evil\")' AS a, -5 AS b, '@SUM(A1)' AS c -- trailing"
    rows = list(csv.reader(io.StringIO(analyst.run(sql, ResultFormat.CSV).decode())))
    assert rows[1] == ['\'=HYPERLINK("http://evil")', "-5", "'@SUM(A1)"]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO operations (operation_id) VALUES ('x')",
        "ALTER TABLE items DELETE WHERE 1",
        "DROP TABLE items",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String')",
        "WITH x AS (SELECT 1) INSERT INTO FUNCTION file('/tmp/out.csv', 'CSV') SELECT * FROM x",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT 1 SETTINGS max_result_rows = 0",
        "/* a comment first */ OPTIMIZE TABLE items FINAL",
    ],
)
def test_anything_but_a_read_is_refused(analyst: AnalystQueries, sql: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        analyst.run(sql, ResultFormat.JSON)
    assert refused.value.code == "SQL_NOT_READ_ONLY", refused.value.message


def test_no_file_is_written_on_this_host(analyst: AnalystQueries, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    for sql in (
        f"SELECT 1 INTO OUTFILE '{target}'",
        f"SELECT 1 /* x */ into\n  outfile '{target}' TRUNCATE",
        f"SELECT '--' INTO OUTFILE '{target}'",  # not a comment: a string
        f"SELECT 1 # '\nINTO OUTFILE '{target}' -- '",  # not a string: a comment
        f"SELECT $$a'b$$ AS s INTO OUTFILE '{target}'",
        f"WITH x AS (SELECT 1) SELECT * FROM x INTO OUTFILE '{target}' AND STDOUT",  # noqa: S608
    ):
        with pytest.raises(QueryRefused) as refused:
            analyst.run(sql, ResultFormat.CSV)
        assert refused.value.code == "SQL_NOT_READ_ONLY"
    assert not target.exists()
    # The words inside a string are only data.
    body = json.loads(analyst.run("SELECT 'into outfile' AS s", ResultFormat.JSON))
    assert body["data"] == [{"s": "into outfile"}]


def test_rows_and_time_over_the_limit_are_refused(analyst: AnalystQueries) -> None:
    with pytest.raises(QueryRefused) as rows:
        analyst.run("SELECT * FROM v1_items", ResultFormat.JSON)
    assert rows.value.code == "SQL_LIMIT_EXCEEDED" and "1000 rows" in rows.value.message
    with pytest.raises(QueryRefused) as slow:
        analyst.run("SELECT count() FROM numbers(100000000000)", ResultFormat.JSON)
    assert slow.value.code == "SQL_LIMIT_EXCEEDED"
    # Nothing of the refused results leaks into the next answer.
    assert json.loads(analyst.run("SELECT 7 AS x", ResultFormat.JSON))["data"] == [{"x": 7}]


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT 1; SELECT 2", "SQL_INVALID"),
        ("SELEC 1", "SQL_INVALID"),
        ("SELECT no_such_column FROM v1_items", "SQL_INVALID"),
        ("SELECT 1 FORMAT TSV", "SQL_INVALID"),
    ],
)
def test_malformed_queries_say_why(analyst: AnalystQueries, sql: str, code: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        analyst.run(sql, ResultFormat.JSON)
    assert refused.value.code == code and refused.value.message


def test_a_semicolon_inside_a_string_is_not_a_second_statement(analyst: AnalystQueries) -> None:
    body = json.loads(analyst.run("SELECT 'a;b' AS s;", ResultFormat.JSON))
    assert body["data"] == [{"s": "a;b"}]


def test_the_writer_still_writes_beside_a_read_only_session(
    store: AnalyticsStore, analyst: AnalystQueries
) -> None:
    analyst.run("SELECT 1", ResultFormat.JSON)
    # The store's own clients are not read-only:
    store.connection.execute("INSERT INTO templates (sponsor_id, name) VALUES (1, 'x')", {})
    assert store.connection.query("SELECT count() FROM templates", {}) == [(1,)]
