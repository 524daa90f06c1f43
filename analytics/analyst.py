"""Read-only SQL for analysts: ``POST /api/v1/admin/sql`` and ``bulkops sql``.

In embedded mode chDB lets one process own the data, so analysts' queries have to go through
the running Bulkops. They run on a client of their own whose session is ``readonly = 1``:
ClickHouse itself then refuses writes, DDL, table functions (``file()``, ``url()``, …) and any
change of setting — including the row and time limits set before it, which a query cannot
lift. The statement, as ClickHouse's own parser reads it, is checked first: that gives common
mistakes a clearer error, and refuses the one write ``readonly`` lets through in embedded
mode: ``INTO OUTFILE``, which clickhouse-local (and so chDB) carries out on this host.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import threading
from collections.abc import Iterable
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from analytics.connection import Connection
from core.cells import safe_cell
from schemas.analytics import ResultFormat

_CLICKHOUSE_FORMAT = {
    ResultFormat.JSON: "JSON",
    ResultFormat.CSV: "CSVWithNames",
    ResultFormat.PARQUET: "Parquet",
}
_READS = re.compile(r"(SELECT|WITH|SHOW|DESCRIBE|EXPLAIN|EXISTS)\b")
# In formatQuery's output a clause starts its line and a literal never holds a raw newline.
_OUTFILE = re.compile(r"^\s*INTO OUTFILE\b", re.MULTILINE)
_ERROR_CODE = re.compile(r"Code: (\d+)")
# ClickHouse error codes: READONLY, ACCESS_DENIED; TIMEOUT_EXCEEDED, TOO_MANY_ROWS_OR_BYTES.
_REFUSED = {164, 497}
_OVER_LIMIT = {159, 396}


class QueryRefused(Exception):
    """A query the analyst must change: ``code`` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AnalystQueries:
    """One read-only session (one query at a time: an analyst cannot starve the worker)."""

    def __init__(self, client: Client, *, max_rows: int, max_seconds: int) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.max_rows = max_rows
        self.max_seconds = max_seconds

    @classmethod
    def open(cls, connection: Connection, *, max_rows: int, max_seconds: int) -> AnalystQueries:
        settings: dict[str, Any] = {
            "max_result_rows": max_rows,
            "result_overflow_mode": "throw",
            "max_execution_time": max_seconds,
            "output_format_json_quote_64bit_integers": 0,
            "readonly": 1,  # last: it freezes every setting above
        }
        return cls(connection.open_client(settings), max_rows=max_rows, max_seconds=max_seconds)

    def run(self, statement: str, result_format: ResultFormat) -> bytes:
        """The result in ``result_format`` (CSV cells that a spreadsheet would run as a
        formula are quoted), or :class:`QueryRefused`."""
        with self._lock:
            try:
                query = _checked(self._canonical(statement))
                raw = self._client.raw_query(query, fmt=_CLICKHOUSE_FORMAT[result_format])
            except ClickHouseError as exc:
                self._drain()
                raise _refusal(str(exc), self.max_rows, self.max_seconds) from exc
        if result_format is ResultFormat.CSV:
            return _formula_safe_csv(raw)
        return raw

    def _canonical(self, statement: str) -> str:
        """The statement as ClickHouse's own parser reads it (``formatQuery``): one statement,
        no comments, keywords in upper case at the start of their line, every literal quoted
        and escaped. What is checked is then exactly what runs."""
        rows = self._client.query("SELECT formatQuery({q:String})", parameters={"q": statement})
        return str(rows.result_rows[0][0])

    def _drain(self) -> None:
        """chDB (4.4) keeps what a query wrote before it failed (a row or time limit hit
        midway) and hands it out ahead of the next result; one throwaway query takes it."""
        with contextlib.suppress(ClickHouseError):
            self._client.raw_query("SELECT 1", fmt="TSV")


def _checked(canonical: str) -> str:
    if not _READS.match(canonical):
        raise QueryRefused(
            "SQL_NOT_READ_ONLY", "Only read queries run here (SELECT, WITH, SHOW, DESCRIBE)"
        )
    if _OUTFILE.search(canonical):
        # Embedded, ClickHouse writes INTO OUTFILE on this host even under readonly = 1.
        raise QueryRefused("SQL_NOT_READ_ONLY", "INTO OUTFILE would write a file: not here")
    # A new line, so the FORMAT clause appended starts a clause of its own.
    return canonical + "\n"


def _refusal(message: str, max_rows: int, max_seconds: int) -> QueryRefused:
    match = _ERROR_CODE.search(message)
    code = int(match.group(1)) if match else 0
    first_line = message.strip().splitlines()[0] if message.strip() else "query failed"
    detail = re.sub(r"\s*\(version [^)]*\)", "", first_line)[:500]
    if code in _REFUSED:
        return QueryRefused("SQL_NOT_READ_ONLY", f"Read-only: the query would write ({detail})")
    if code in _OVER_LIMIT:
        return QueryRefused(
            "SQL_LIMIT_EXCEEDED",
            f"Over the limit of {max_rows} rows or {max_seconds} s: aggregate, filter or add "
            f"a LIMIT ({detail})",
        )
    return QueryRefused("SQL_INVALID", detail)


def _formula_safe_csv(raw: bytes) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    rows: Iterable[list[str]] = csv.reader(io.StringIO(raw.decode("utf-8", errors="replace")))
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue().encode("utf-8")
