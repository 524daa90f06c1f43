"""What the worker keeps in ClickHouse and reads back while it runs: stored requests and item
batches, stored item outcomes (to recognise a batch already sunk), and code reservations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from analytics import rows, sql
from analytics.connection import Connection
from analytics.timefix import utc
from schemas.common import Channel, ErrorCategory, ItemError, ItemStatus
from schemas.messages import ItemBatch, ItemsChunk, OperationRequested, ResultBatch

_SQL = sql.load("worker.sql")


class WorkerState:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def request(self, sponsor_id: int, operation_id: str) -> OperationRequested | None:
        found = self._connection.query(
            _SQL["request"], {"sponsor": sponsor_id, "operation": operation_id}
        )
        return OperationRequested.model_validate_json(found[0][0]) if found else None

    def record_chunk(self, chunk: ItemsChunk, batches: Sequence[ItemBatch]) -> None:
        """A chunk of items as it arrived (:func:`analytics.rows.chunk_rows`)."""
        for table in rows.chunk_rows(chunk, batches):
            if table.rows:
                self._connection.insert(table.table, table.rows, table.columns)

    def item_batches(
        self, sponsor_id: int, operation_id: str, indexes: list[int]
    ) -> dict[int, str]:
        """Stored item batches' JSON by batch index (the message to send, as it was made)."""
        found = self._connection.query(
            _SQL["item_batches"],
            {"sponsor": sponsor_id, "operation": operation_id, "indexes": indexes},
        )
        return {int(index): str(payload) for index, payload in found}

    def stored_result(self, batch: ItemBatch) -> ResultBatch | None:
        """The outcome of ``batch`` as the sink stored it, or None unless every item is stored.

        The sink writes a batch's items in one insert before it announces the batch, so a
        batch whose announcement was lost is recognised here and counted without being
        processed (or sent) again.
        """
        found = self._connection.query(
            _SQL["stored_items"],
            {
                "sponsor": batch.sponsor_id,
                "operation": batch.operation_id,
                "start": batch.start_index,
                "stop": batch.start_index + batch.count,
            },
        )
        if len(found) != batch.count:
            return None
        return ResultBatch(
            operation_id=batch.operation_id,
            sponsor_id=batch.sponsor_id,
            operation_type=batch.operation_type,
            batch_index=batch.batch_index,
            start_index=batch.start_index,
            statuses=[ItemStatus(row[1]) for row in found],
            results=[row[2] for row in found],
            errors=[
                ItemError(
                    item_index=int(row[0]),
                    item_id=str(row[13]),
                    error_code=str(row[3]),
                    error_message=str(row[4] or ""),
                    error_category=ErrorCategory(row[5]),
                    is_retryable=bool(row[6]),
                    retry_count=int(row[7]),
                )
                for row in found
                if row[3] is not None and row[5] is not None
            ],
            processed_at=max(utc(row[11]) or datetime.now(UTC) for row in found),
            duration_ms=float(sum(row[8] for row in found)),
            channel=Channel(found[0][12]) if found[0][12] else None,
            unit_cost=max(float(row[9]) for row in found),
            attempts=[int(row[10]) for row in found],
            item_ids=[str(row[13]) for row in found] if batch.job is not None else [],
        )

    def reserve_codes(
        self,
        sponsor_id: int,
        operation_id: str,
        needs: Sequence[tuple[int, int, int]],
    ) -> dict[int, list[str]]:
        """Codes for each ``(item_index, tier_id, count)``: all of them, or none (absent).

        Items that already hold a reservation of this operation get it back (a replay), the
        others get the next available codes of their tier. Callers serialise per sponsor
        (the worker's explode agent owns the sponsor's partition), and the read and the
        write below happen under the write lock, so no code is ever handed out twice.
        """
        if not needs:
            return {}
        with self._connection.write_lock:
            held = self._reserved(sponsor_id, operation_id, [index for index, _, _ in needs])
            wanted: dict[int, list[tuple[int, int]]] = {}
            for index, tier, count in needs:
                if index not in held and count > 0:
                    wanted.setdefault(tier, []).append((index, count))
            granted: list[tuple[int, int, list[str]]] = []
            for tier, items in wanted.items():
                pool = self._available(sponsor_id, tier, sum(count for _, count in items))
                for index, count in items:
                    if count > len(pool):
                        continue  # not enough left for this one: it gets none
                    held[index], pool = pool[:count], pool[count:]
                    granted.append((index, tier, held[index]))
            table = rows.reservation_rows(sponsor_id, operation_id, granted)
            if table.rows:
                self._connection.insert(table.table, table.rows, table.columns)
        for index, _, count in needs:
            if count == 0:
                held.setdefault(index, [])
        return held

    def _reserved(
        self, sponsor_id: int, operation_id: str, indexes: list[int]
    ) -> dict[int, list[str]]:
        held: dict[int, list[str]] = {}
        for index, code in self._connection.query(
            _SQL["reserved_for"],
            {"sponsor": sponsor_id, "operation": operation_id, "indexes": indexes},
        ):
            held.setdefault(int(index), []).append(str(code))
        return held

    def _available(self, sponsor_id: int, tier: int, limit: int) -> list[str]:
        found = self._connection.query(
            _SQL["available_codes"], {"sponsor": sponsor_id, "tier": tier, "limit": limit}
        )
        return [str(row[0]) for row in found]
