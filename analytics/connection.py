"""One ClickHouse connection per process: a client for writes and one for reads.

clickhouse-connect clients are synchronous and not meant to be shared between threads, so
each sits behind a lock; async callers go through ``asyncio.to_thread``. The write lock is
re-entrant, so a caller can read and write under it as one step (code reservations do).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from analytics import sql
from analytics.client import connect
from analytics.faults import WriteFaults


class Connection:
    def __init__(
        self,
        writer: Client,
        reader: Client,
        opener: Callable[[dict[str, Any]], Client] | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._opener = opener
        self._opened: list[Client] = []
        self.write_lock = threading.RLock()
        self._read_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        *,
        dsn: str | None,
        chdb_path: Path,
        database: str,
        write_fault_trigger: Path | None = None,
    ) -> Connection:
        """Both clients on ``database`` (created if missing), and the schema ensured.

        ``write_fault_trigger``: fault injection for tests (:mod:`analytics.faults`).
        """
        writer = connect(dsn=dsn, chdb_path=chdb_path, database=database)
        if write_fault_trigger is not None:
            writer = cast(Client, WriteFaults(writer, write_fault_trigger))
        reader = connect(dsn=dsn, chdb_path=chdb_path, database=database)

        def opener(settings: dict[str, Any]) -> Client:
            return connect(dsn=dsn, chdb_path=chdb_path, database=database, settings=settings)

        connection = cls(writer, reader, opener)
        connection.ensure_schema()
        return connection

    def ensure_schema(self) -> None:
        with self.write_lock:
            for filename in ("schema.sql", "views.sql"):
                for statement in sql.load(filename).values():
                    self._writer.command(statement)

    def open_client(self, settings: dict[str, Any]) -> Client:
        """Another client on the same database, with its own session ``settings`` (closed
        with the connection)."""
        if self._opener is None:
            raise RuntimeError("this connection cannot open more clients")
        client = self._opener(settings)
        self._opened.append(client)
        return client

    def query(self, statement: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._read_lock:
            result = self._reader.query(statement, parameters=parameters)
            return [tuple(row) for row in result.result_rows]

    def execute(self, statement: str, parameters: dict[str, Any]) -> None:
        """A statement that writes inside ClickHouse (``INSERT … SELECT``), under the write lock."""
        with self.write_lock:
            self._writer.command(statement, parameters=parameters)

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        with self.write_lock:
            self._writer.insert(table, rows, column_names=columns)

    def insert_arrow(self, table: str, arrow: pa.Table) -> None:
        """Column-oriented rows (:mod:`analytics.arrow`): ClickHouse reads them natively."""
        with self.write_lock:
            self._writer.insert_arrow(table, arrow)

    def drop_database(self) -> None:
        """Remove the database and everything in it (tests and resets)."""
        with self.write_lock:
            database = self._writer.database
            self._writer.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")

    def close(self) -> None:
        for client in (self._writer, self._reader, *self._opened):
            client.close()
