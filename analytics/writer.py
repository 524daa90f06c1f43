"""What the worker's sink and count agents write: item outcomes, requests, operation rows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from analytics import rows
from analytics.connection import Connection
from analytics.rows import TableRows
from core.metrics import CLICKHOUSE_ROWS_WRITTEN, CLICKHOUSE_WRITE_ERRORS, CLICKHOUSE_WRITE_SECONDS
from schemas.messages import OperationRequested, ResultBatch
from schemas.status import OperationSnapshot


class ResultWriter:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def insert_results(
        self, batches: Sequence[ResultBatch], extra: Sequence[TableRows] = ()
    ) -> int:
        """Store the items of several result batches, and what their kinds keep beside them
        (``extra``: codes, dealer invitations), in one insert per table; returns the items.

        Inserts of the side tables go first: a batch is announced only once its items are
        stored, and its items are what a replay is recognised by.
        """
        items = rows.item_rows(batches)
        for table in merged_by_table(extra):
            self._write(table)
        self._write(items)
        return len(items)

    def write(self, tables: Sequence[TableRows]) -> None:
        """Store rows of any tables, one insert per table (rows of one table are merged)."""
        for table in merged_by_table(tables):
            self._write(table)

    def record_request(self, request: OperationRequested) -> None:
        """Keep the request as submitted, once per operation (replays collapse on merge)."""
        self._write(rows.request_row(request))

    def upsert_operation(self, snapshot: OperationSnapshot, **columns: Any) -> None:
        """Write the operation's current row; the highest ``version`` wins on merge.

        ``columns``: what only the worker knows (``subscription_tier_id``, ``code_prefix``,
        ``channel``, ``total_cost``), as :func:`analytics.rows.operation_row` takes them.
        """
        self._write(rows.operation_row(snapshot, **columns))

    def _write(self, table: TableRows) -> None:
        if not len(table):
            return
        started = time.perf_counter()
        try:
            if table.column_oriented:
                self._connection.insert_arrow(table.table, table.arrow())
            else:
                self._connection.insert(table.table, table.rows, table.columns)
        except Exception:
            CLICKHOUSE_WRITE_ERRORS.labels(table.table).inc()
            raise
        CLICKHOUSE_WRITE_SECONDS.labels(table.table).observe(time.perf_counter() - started)
        CLICKHOUSE_ROWS_WRITTEN.labels(table.table).inc(len(table))


def merged_by_table(tables: Sequence[TableRows]) -> list[TableRows]:
    """One ``TableRows`` per table, in first-seen order; the rows of later ones are moved into
    the first of their table (the inputs are built for this one insert and consumed by it)."""
    merged: dict[str, TableRows] = {}
    for table in tables:
        into = merged.setdefault(table.table, table)
        if into is table:
            continue
        if into.gathered is not None and table.gathered is not None:
            into.gathered.extend(table.gathered)
        else:
            into.rows.extend(table.rows)
    return list(merged.values())
