"""The ClickHouse store, split by caller over one connection.

``writer`` is the worker's sink (item outcomes, requests, operation rows), ``state`` what the
worker keeps and reads back while it runs (item batches, stored outcomes, code reservations),
``reader`` and ``inventory`` what the API reads, ``templates`` the sponsors' saved templates.
Each part takes only the connection, so a caller (and its tests) depends on the part it uses;
:mod:`analytics.testing` has in-memory fakes of the worker's parts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from analytics.connection import Connection
from analytics.idempotency import IdempotencyKeys
from analytics.inventory import InventoryReader
from analytics.reader import Reader
from analytics.retention import Retention
from analytics.retention import apply as apply_retention
from analytics.templates import Templates
from analytics.worker_state import WorkerState
from analytics.writer import ResultWriter
from core.settings import BulkopsSettings

log = logging.getLogger("bulkops.analytics")


@dataclass(frozen=True)
class AnalyticsStore:
    connection: Connection
    writer: ResultWriter
    state: WorkerState
    reader: Reader
    inventory: InventoryReader
    templates: Templates
    idempotency: IdempotencyKeys

    @classmethod
    def open(
        cls,
        *,
        dsn: str | None,
        chdb_path: Path,
        database: str,
        retention: Retention | None = None,
    ) -> AnalyticsStore:
        connection = Connection.open(dsn=dsn, chdb_path=chdb_path, database=database)
        _retain(connection, retention or Retention())
        return cls.over(connection)

    @classmethod
    def from_settings(cls, settings: BulkopsSettings) -> AnalyticsStore:
        """The store a deployable's settings name (server DSN, else embedded chDB)."""
        connection = Connection.open(
            dsn=settings.clickhouse_dsn,
            chdb_path=settings.chdb_path,
            database=settings.clickhouse_database,
            write_fault_trigger=settings.clickhouse_write_fault_file,
        )
        _retain(
            connection,
            Retention(
                results_days=settings.retention_results_days,
                personal_days=settings.retention_personal_days,
            ),
        )
        return cls.over(connection)

    @classmethod
    def over(cls, connection: Connection) -> AnalyticsStore:
        return cls(
            connection=connection,
            writer=ResultWriter(connection),
            state=WorkerState(connection),
            reader=Reader(connection),
            inventory=InventoryReader(connection),
            templates=Templates(connection),
            idempotency=IdempotencyKeys(connection),
        )

    def close(self) -> None:
        self.connection.close()

    def drop_database(self) -> None:
        self.connection.drop_database()


def _retain(connection: Connection, retention: Retention) -> None:
    changed = apply_retention(connection, retention)
    if changed:
        log.info(
            "retention: results %d days, personal data %d days (set on %s)",
            retention.results_days,
            retention.personal_days,
            ", ".join(changed),
        )
