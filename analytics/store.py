"""The sink writer and the read queries, over one ClickHouse client per direction.

clickhouse-connect clients are synchronous and not meant to be shared between threads, so
the store keeps one client for writes and one for reads, each behind a lock; async callers go
through ``asyncio.to_thread``. Inserts are column-oriented and batched by the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from analytics import ddl
from analytics.client import connect
from schemas.common import Channel, ErrorCategory, ItemStatus, OperationType
from schemas.messages import (
    ItemBatch,
    ItemError,
    OperationRequested,
    OperationSnapshot,
    RecipientChunk,
    ResultBatch,
)

_ITEM_COLUMNS = (
    "sponsor_id",
    "operation_id",
    "item_index",
    "item_id",
    "operation_type",
    "status",
    "result_data",
    "error_code",
    "error_message",
    "error_category",
    "is_retryable",
    "retry_count",
    "processed_at",
    "processing_duration_ms",
    "channel",
    "cost",
    "attempts",
)
_CODE_COLUMNS = (
    "sponsor_id",
    "operation_id",
    "item_index",
    "code",
    "subscription_tier_id",
    "batch_name",
    "created_at",
    "expires_at",
)
_OPERATION_COLUMNS = (
    "operation_id",
    "sponsor_id",
    "operation_type",
    "operation_name",
    "status",
    "total_items",
    "processed_items",
    "successful_items",
    "failed_items",
    "skipped_items",
    "created_at",
    "started_at",
    "completed_at",
    "requested_by",
    "subscription_tier_id",
    "code_prefix",
    "channel",
    "total_cost",
    "version",
)

_HISTORY = """
SELECT operation_id, operation_name, operation_type, status, total_items, processed_items,
       successful_items, failed_items, skipped_items, created_at, started_at, completed_at,
       requested_by, subscription_tier_id, code_prefix, channel, total_cost, sponsor_id
FROM operations FINAL
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND ({status:Nullable(String)} IS NULL OR status = {status:Nullable(String)})
  AND ({kind:Nullable(String)} IS NULL OR operation_type = {kind:Nullable(String)})
ORDER BY created_at DESC, operation_id DESC
LIMIT {limit:UInt32} OFFSET {offset:UInt64}
"""
_HISTORY_COUNT = """
SELECT count() FROM operations FINAL
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND ({status:Nullable(String)} IS NULL OR status = {status:Nullable(String)})
  AND ({kind:Nullable(String)} IS NULL OR operation_type = {kind:Nullable(String)})
"""
_ITEMS_PAGE = """
SELECT item_index, item_id, status, result_data, error_code, error_message, error_category,
       is_retryable, retry_count, processed_at, processing_duration_ms, channel, cost, attempts
FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index >= {after:UInt32}
  AND ({status:Nullable(String)} IS NULL OR status = {status:Nullable(String)})
ORDER BY item_index
LIMIT {limit:UInt32}
"""
_AGG_STATUS = """
SELECT status, count() FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
GROUP BY status ORDER BY status
"""
_AGG_ERRORS = """
SELECT error_code, error_category, count(), countIf(is_retryable) FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND error_code IS NOT NULL
GROUP BY error_code, error_category ORDER BY count() DESC, error_code LIMIT 100
"""
_AGG_TOTALS = """
SELECT count(), sum(cost), sum(attempts), avg(processing_duration_ms),
       quantile(0.5)(processing_duration_ms), quantile(0.95)(processing_duration_ms),
       max(processing_duration_ms), min(processed_at), max(processed_at)
FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
"""
_CODES_PAGE = """
SELECT item_index, code, subscription_tier_id, batch_name, expires_at
FROM codes FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index >= {after:UInt32}
ORDER BY item_index
LIMIT {limit:UInt32}
"""
_CODE_COUNTS = """
SELECT uniqExact(item_index), uniqExact(code), count()
FROM codes
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
"""
_ITEM_COUNTS = """
SELECT status, count() FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
GROUP BY status
"""
_KNOWN_CODES = """
SELECT DISTINCT code FROM codes
WHERE sponsor_id = {sponsor:UInt64} AND code IN {codes:Array(String)}
"""
_STAT_TOTALS = """
SELECT count(), countIf(status = 'Completed'), countIf(status = 'Failed'),
       countIf(status = 'Cancelled'), countIf(status = 'PartiallyCompleted'),
       sum(processed_items), sum(successful_items),
       avgIf(dateDiff('millisecond', started_at, completed_at), completed_at IS NOT NULL),
       sum(total_cost)
FROM operations FINAL
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
"""
_STAT_RECENT = """
SELECT count(), sumIf(successful_items, operation_type = 'BulkLinkSend'),
       sumIf(successful_items, operation_type = 'BulkCodeGeneration'),
       sum(processed_items), sum(successful_items)
FROM operations FINAL
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND created_at >= {since:DateTime64(3, 'UTC')}
"""
_STAT_CHANNELS = """
SELECT channel, sum(processed_items), sum(successful_items), sum(total_cost)
FROM operations FINAL
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
  AND channel IS NOT NULL
GROUP BY channel ORDER BY channel
"""
_STAT_HOURS = """
SELECT toHour(created_at, {tz:String}) AS hour, count(), sum(processed_items),
       sum(successful_items)
FROM operations FINAL
WHERE ({sponsor:Nullable(UInt64)} IS NULL OR sponsor_id = {sponsor:Nullable(UInt64)})
GROUP BY hour ORDER BY count() DESC, hour LIMIT 5
"""
_TEMPLATES = """
SELECT name, channel, message, batch_size, max_concurrency, retry_attempts, updated_at
FROM templates FINAL WHERE sponsor_id = {sponsor:UInt64} ORDER BY name
"""
_TEMPLATE_COUNT = """
SELECT uniqExact(name) FROM templates WHERE sponsor_id = {sponsor:UInt64}
"""
_REQUEST = """
SELECT request_json FROM operation_requests FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
"""
_FAILED = """
SELECT item_index, is_retryable FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String} AND status = 'Failed'
  AND ({code:Nullable(String)} IS NULL OR error_code = {code:Nullable(String)})
  AND ({category:Nullable(String)} IS NULL OR error_category = {category:Nullable(String)})
ORDER BY item_index
"""
_RECIPIENTS = """
SELECT item_index, name, address, message, idempotency_key, dealer_json FROM recipients FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index IN {indexes:Array(UInt32)}
ORDER BY item_index
"""
_STORED_ITEMS = """
SELECT item_index, status, result_data, error_code, error_message, error_category,
       is_retryable, retry_count, processing_duration_ms, cost, attempts, processed_at, channel
FROM items FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index >= {start:UInt32} AND item_index < {stop:UInt32}
ORDER BY item_index
"""
_ITEM_BATCHES = """
SELECT batch_index, batch_json FROM item_batches FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND batch_index IN {indexes:Array(UInt32)}
ORDER BY batch_index
"""
# A code is available when it has not expired and its latest reservation row (if any) is
# "released". Oldest expiry first, so codes that would lapse soonest are handed out first.
_AVAILABLE_CODES = """
SELECT code FROM codes FINAL
WHERE sponsor_id = {sponsor:UInt64} AND subscription_tier_id = {tier:UInt32}
  AND expires_at > now64(3)
  AND code NOT IN (
    SELECT code FROM code_reservations FINAL
    WHERE sponsor_id = {sponsor:UInt64} AND state != 'released'
  )
ORDER BY expires_at, operation_id, item_index
LIMIT {limit:UInt32}
"""
_RESERVED_FOR = """
SELECT item_index, code FROM code_reservations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
  AND item_index IN {indexes:Array(UInt32)} AND state != 'released'
ORDER BY item_index, code
"""
_INVENTORY = """
SELECT c.subscription_tier_id AS tier,
       countIf(c.expires_at > now64(3) AND r.state IN ('', 'released')) AS available,
       countIf(r.state = 'reserved') AS reserved,
       countIf(r.state = 'transferred') AS transferred,
       countIf(c.expires_at <= now64(3) AND r.state IN ('', 'released')) AS expired
FROM (SELECT code, subscription_tier_id, expires_at FROM codes FINAL
      WHERE sponsor_id = {sponsor:UInt64}) AS c
LEFT JOIN (SELECT code, state FROM code_reservations FINAL
           WHERE sponsor_id = {sponsor:UInt64}) AS r ON c.code = r.code
GROUP BY tier
ORDER BY tier
SETTINGS join_use_nulls = 0
"""
_EXISTING_DEALERS = """
SELECT DISTINCT email FROM dealer_invitations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND status = 'Success' AND email IN {emails:Array(String)}
"""
_DEALER_REPORT = """
SELECT row_number, email, phone, dealer_name, tier, codes, token, status,
       error_code, error_message, processed_at
FROM dealer_invitations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String}
ORDER BY row_number
"""
_DEALER_ERRORS = """
SELECT row_number, email, coalesce(error_message, error_code, status), processed_at
FROM dealer_invitations FINAL
WHERE sponsor_id = {sponsor:UInt64} AND operation_id = {operation:String} AND status != 'Success'
ORDER BY row_number
LIMIT {limit:UInt32}
"""
_DUPLICATE_CODES = """
SELECT count() FROM (SELECT code FROM codes FINAL GROUP BY code HAVING count() > 1)
"""


_RESERVATION_COLUMNS = (
    "sponsor_id",
    "code",
    "subscription_tier_id",
    "operation_id",
    "item_index",
    "state",
    "updated_at",
)
_DEALER_COLUMNS = (
    "sponsor_id",
    "operation_id",
    "item_index",
    "row_number",
    "email",
    "phone",
    "dealer_name",
    "tier",
    "codes",
    "token",
    "invitation_type",
    "status",
    "error_code",
    "error_message",
    "processed_at",
)


def _utc(value: datetime | None) -> datetime | None:
    """chDB returns naive datetimes for UTC columns; make them aware again."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class HistoryRow:
    operation_id: str
    operation_name: str
    operation_type: str
    status: str
    total_items: int
    processed_items: int
    successful_items: int
    failed_items: int
    skipped_items: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    requested_by: str
    subscription_tier_id: int | None
    code_prefix: str | None
    channel: str | None
    total_cost: float
    sponsor_id: int


@dataclass(frozen=True)
class CodeCounts:
    items: int
    unique_codes: int
    rows: int


class AnalyticsStore:
    """Writes the flow's outcomes to ClickHouse and answers the history queries."""

    def __init__(self, writer: Client, reader: Client) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    @classmethod
    def open(cls, *, dsn: str | None, chdb_path: Path, database: str) -> AnalyticsStore:
        writer = connect(dsn=dsn, chdb_path=chdb_path, database=database)
        reader = connect(dsn=dsn, chdb_path=chdb_path, database=database)
        store = cls(writer, reader)
        store.ensure_schema()
        return store

    def drop_database(self) -> None:
        """Remove the store's database and everything in it (tests and resets)."""
        with self._write_lock:
            database = self._writer.database
            self._writer.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")

    def close(self) -> None:
        self._writer.close()
        self._reader.close()

    def ensure_schema(self) -> None:
        with self._write_lock:
            for statement in ddl.ALL:
                self._writer.command(statement)

    # -- writes ---------------------------------------------------------------------------

    def insert_results(self, batches: Sequence[ResultBatch]) -> int:
        """Store item outcomes (and codes) of several result batches in one insert per table."""
        items: list[list[Any]] = [[] for _ in _ITEM_COLUMNS]
        codes: list[list[Any]] = [[] for _ in _CODE_COLUMNS]
        dealers: list[list[Any]] = []
        reservations: list[list[Any]] = []
        for batch in batches:
            self._collect(batch, items, codes)
            if batch.dealers is not None:
                self._collect_dealers(batch, dealers, reservations)
        with self._write_lock:
            if dealers:
                self._writer.insert("dealer_invitations", dealers, column_names=_DEALER_COLUMNS)
            if reservations:
                self._writer.insert(
                    "code_reservations", reservations, column_names=_RESERVATION_COLUMNS
                )
            if items[0]:
                self._writer.insert(
                    "items", items, column_names=_ITEM_COLUMNS, column_oriented=True
                )
            if codes[0]:
                self._writer.insert(
                    "codes", codes, column_names=_CODE_COLUMNS, column_oriented=True
                )
        return len(items[0])

    @staticmethod
    def _collect(batch: ResultBatch, items: list[list[Any]], codes: list[list[Any]]) -> None:
        n = len(batch.statuses)
        op = batch.operation_id
        start = batch.start_index
        indexes = range(start, start + n)
        errors = {e.item_index: e for e in batch.errors}
        per_item_ms = batch.duration_ms / n if n else 0.0
        items[0].extend([batch.sponsor_id] * n)
        items[1].extend([op] * n)
        items[2].extend(indexes)
        items[3].extend(f"{op}:{i}" for i in indexes)
        items[4].extend([batch.operation_type.value] * n)
        items[5].extend(s.value for s in batch.statuses)
        items[6].extend(batch.results)
        for i in indexes:
            error = errors.get(i)
            items[7].append(error.error_code if error else None)
            items[8].append(error.error_message if error else None)
            items[9].append(error.error_category.value if error else None)
            items[10].append(error.is_retryable if error else False)
            items[11].append(error.retry_count if error else 0)
        items[12].extend([batch.processed_at] * n)
        items[13].extend([per_item_ms] * n)
        items[14].extend([batch.channel.value if batch.channel else None] * n)
        items[15].extend(
            batch.unit_cost if s is ItemStatus.SUCCESS else 0.0 for s in batch.statuses
        )
        items[16].extend(
            batch.attempts or [1 if s is not ItemStatus.SKIPPED else 0 for s in batch.statuses]
        )
        if batch.operation_type is OperationType.CODE_GENERATION:
            assert batch.tier_id is not None and batch.expires_at is not None
            for offset, (status, code) in enumerate(
                zip(batch.statuses, batch.results, strict=True)
            ):
                if status is ItemStatus.SUCCESS and code is not None:
                    codes[0].append(batch.sponsor_id)
                    codes[1].append(op)
                    codes[2].append(start + offset)
                    codes[3].append(code)
                    codes[4].append(batch.tier_id)
                    codes[5].append(batch.batch_name)
                    codes[6].append(batch.processed_at)
                    codes[7].append(batch.expires_at)

    @staticmethod
    def _collect_dealers(
        batch: ResultBatch, dealers: list[list[Any]], reservations: list[list[Any]]
    ) -> None:
        """Invitation rows, and their codes transferred (success) or given back (not)."""
        assert batch.dealers is not None
        errors = {e.item_index: e for e in batch.errors}
        now = datetime.now(UTC)
        for offset, (dealer, status) in enumerate(zip(batch.dealers, batch.statuses, strict=True)):
            if dealer is None:
                continue
            index = batch.start_index + offset
            error = errors.get(index)
            dealers.append(
                [
                    batch.sponsor_id,
                    batch.operation_id,
                    index,
                    dealer.row_number,
                    dealer.email,
                    dealer.phone,
                    dealer.dealer_name,
                    dealer.tier,
                    dealer.codes if status is ItemStatus.SUCCESS else [],
                    dealer.token,
                    dealer.invitation_type,
                    status.value,
                    error.error_code if error else None,
                    error.error_message if error else None,
                    batch.processed_at,
                ]
            )
            state = "transferred" if status is ItemStatus.SUCCESS else "released"
            reservations.extend(
                [batch.sponsor_id, code, dealer.tier_id, batch.operation_id, index, state, now]
                for code in dealer.codes
            )

    def record_request(self, request: OperationRequested) -> None:
        """Keep the request as submitted, once per operation (replays collapse on merge)."""
        row = [
            request.operation_id,
            request.sponsor_id,
            request.requested_at,
            request.model_dump_json(),
        ]
        with self._write_lock:
            self._writer.insert(
                "operation_requests",
                [row],
                column_names=("operation_id", "sponsor_id", "requested_at", "request_json"),
            )

    def upsert_operation(
        self,
        snapshot: OperationSnapshot,
        *,
        subscription_tier_id: int | None = None,
        code_prefix: str | None = None,
        channel: str | None = None,
        total_cost: float = 0.0,
    ) -> None:
        """Write the operation's current row; the highest ``version`` wins on merge."""
        row = [
            snapshot.operation_id,
            snapshot.sponsor_id,
            snapshot.operation_type.value,
            snapshot.operation_name,
            snapshot.status.value,
            snapshot.total_items,
            snapshot.processed_items,
            snapshot.successful_items,
            snapshot.failed_items,
            snapshot.skipped_items,
            snapshot.created_at,
            snapshot.started_at,
            snapshot.completed_at,
            snapshot.requested_by,
            subscription_tier_id,
            code_prefix,
            channel,
            total_cost,
            snapshot.version,
        ]
        with self._write_lock:
            self._writer.insert("operations", [row], column_names=_OPERATION_COLUMNS)

    # -- reads ----------------------------------------------------------------------------

    def _query(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._read_lock:
            return [
                tuple(row) for row in self._reader.query(sql, parameters=parameters).result_rows
            ]

    def history(
        self,
        sponsor_id: int | None,
        *,
        limit: int,
        offset: int,
        status: str | None = None,
        operation_type: str | None = None,
    ) -> list[HistoryRow]:
        rows = self._query(
            _HISTORY,
            {
                "sponsor": sponsor_id,
                "limit": limit,
                "offset": offset,
                "status": status,
                "kind": operation_type,
            },
        )
        result = []
        for row in rows:
            values = list(row)
            for i in (9, 10, 11):
                values[i] = _utc(values[i])
            result.append(HistoryRow(*values))
        return result

    def history_count(
        self, sponsor_id: int | None, status: str | None = None, operation_type: str | None = None
    ) -> int:
        parameters = {"sponsor": sponsor_id, "status": status, "kind": operation_type}
        return int(self._query(_HISTORY_COUNT, parameters)[0][0])

    def items_page(
        self,
        sponsor_id: int,
        operation_id: str,
        *,
        after_index: int,
        limit: int,
        status: str | None = None,
    ) -> list[tuple[Any, ...]]:
        rows = self._query(
            _ITEMS_PAGE,
            {
                "sponsor": sponsor_id,
                "operation": operation_id,
                "after": after_index,
                "limit": limit,
                "status": status,
            },
        )
        return [(*row[:9], _utc(row[9]), *row[10:]) for row in rows]

    def aggregates(self, sponsor_id: int, operation_id: str) -> dict[str, Any]:
        """Per-operation figures: items by status and by error code, cost, durations."""
        scope = {"sponsor": sponsor_id, "operation": operation_id}
        items, cost, attempts, avg_ms, p50, p95, max_ms, first, last = self._query(
            _AGG_TOTALS, scope
        )[0]
        return {
            "items": int(items),
            "byStatus": {str(s): int(n) for s, n in self._query(_AGG_STATUS, scope)},
            "byError": [
                {
                    "errorCode": code,
                    "errorCategory": category,
                    "count": int(n),
                    "retryable": int(retryable),
                }
                for code, category, n, retryable in self._query(_AGG_ERRORS, scope)
            ],
            "totalCost": round(float(cost or 0), 6),
            "attempts": int(attempts or 0),
            "processingMs": {
                "average": round(float(avg_ms or 0), 3),
                "p50": round(float(p50 or 0), 3),
                "p95": round(float(p95 or 0), 3),
                "max": round(float(max_ms or 0), 3),
            },
            "firstProcessedAt": _utc(first) if items else None,
            "lastProcessedAt": _utc(last) if items else None,
        }

    def codes_page(
        self, sponsor_id: int, operation_id: str, *, after_index: int, limit: int
    ) -> list[tuple[int, str, int, str | None, datetime]]:
        rows = self._query(
            _CODES_PAGE,
            {
                "sponsor": sponsor_id,
                "operation": operation_id,
                "after": after_index,
                "limit": limit,
            },
        )
        return [(r[0], r[1], r[2], r[3], _utc(r[4])) for r in rows]  # type: ignore[misc]

    def code_counts(self, sponsor_id: int, operation_id: str) -> CodeCounts:
        row = self._query(_CODE_COUNTS, {"sponsor": sponsor_id, "operation": operation_id})[0]
        return CodeCounts(items=int(row[0]), unique_codes=int(row[1]), rows=int(row[2]))

    def item_counts(self, sponsor_id: int, operation_id: str) -> dict[str, int]:
        rows = self._query(_ITEM_COUNTS, {"sponsor": sponsor_id, "operation": operation_id})
        return {str(status): int(count) for status, count in rows}

    def known_codes(self, sponsor_id: int, codes: Iterable[str]) -> set[str]:
        """Which of ``codes`` this system generated for the sponsor."""
        wanted = sorted(set(codes))
        found: set[str] = set()
        for start in range(0, len(wanted), 10_000):
            rows = self._query(
                _KNOWN_CODES, {"sponsor": sponsor_id, "codes": wanted[start : start + 10_000]}
            )
            found.update(str(row[0]) for row in rows)
        return found

    def statistics(self, sponsor_id: int | None, *, since: datetime, tz: str) -> dict[str, Any]:
        """Dashboard figures (the seed's ``/statistics``), from the operations table."""
        scope = {"sponsor": sponsor_id}
        totals = self._query(_STAT_TOTALS, scope)[0]
        recent = self._query(_STAT_RECENT, {**scope, "since": since})[0]
        channels = self._query(_STAT_CHANNELS, scope)
        hours = self._query(_STAT_HOURS, {**scope, "tz": tz})
        return {
            "totals": totals,
            "recent": recent,
            "channels": channels,
            "hours": hours,
        }

    def save_template(
        self,
        sponsor_id: int,
        *,
        name: str,
        channel: str,
        message: str,
        batch_size: int,
        max_concurrency: int,
        retry_attempts: int,
    ) -> None:
        row = [
            sponsor_id,
            name,
            channel,
            message,
            batch_size,
            max_concurrency,
            retry_attempts,
            datetime.now(UTC),
        ]
        with self._write_lock:
            self._writer.insert(
                "templates",
                [row],
                column_names=(
                    "sponsor_id",
                    "name",
                    "channel",
                    "message",
                    "batch_size",
                    "max_concurrency",
                    "retry_attempts",
                    "updated_at",
                ),
            )

    def templates(self, sponsor_id: int) -> list[tuple[Any, ...]]:
        return self._query(_TEMPLATES, {"sponsor": sponsor_id})

    def template_count(self, sponsor_id: int) -> int:
        return int(self._query(_TEMPLATE_COUNT, {"sponsor": sponsor_id})[0][0])

    def record_recipients(self, chunk: RecipientChunk) -> None:
        """Keep a link send's sendable recipients, so its failures can be retried later."""
        rows = [
            [
                chunk.sponsor_id,
                chunk.operation_id,
                r.index,
                r.name,
                r.address,
                r.message,
                r.idempotency_key or f"{chunk.operation_id}:{r.index}",
                r.dealer.model_dump_json(exclude={"codes"}) if r.dealer else "",
            ]
            for r in chunk.recipients
            if r.skip is None and r.address is not None and r.message is not None
        ]
        if not rows:
            return
        with self._write_lock:
            self._writer.insert(
                "recipients",
                rows,
                column_names=(
                    "sponsor_id",
                    "operation_id",
                    "item_index",
                    "name",
                    "address",
                    "message",
                    "idempotency_key",
                    "dealer_json",
                ),
            )

    def request(self, sponsor_id: int, operation_id: str) -> OperationRequested | None:
        rows = self._query(_REQUEST, {"sponsor": sponsor_id, "operation": operation_id})
        return OperationRequested.model_validate_json(rows[0][0]) if rows else None

    def failed_items(
        self, sponsor_id: int, operation_id: str, *, code: str | None, category: str | None
    ) -> list[tuple[int, bool]]:
        rows = self._query(
            _FAILED,
            {"sponsor": sponsor_id, "operation": operation_id, "code": code, "category": category},
        )
        return [(int(index), bool(retryable)) for index, retryable in rows]

    def recipients(
        self, sponsor_id: int, operation_id: str, indexes: list[int]
    ) -> list[tuple[int, str, str, str, str, str]]:
        found: list[tuple[int, str, str, str, str, str]] = []
        for start in range(0, len(indexes), 10_000):
            rows = self._query(
                _RECIPIENTS,
                {
                    "sponsor": sponsor_id,
                    "operation": operation_id,
                    "indexes": indexes[start : start + 10_000],
                },
            )
            found.extend((int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows)
        return found

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
        write below happen under one lock, so no code is ever handed out twice.
        """
        if not needs:
            return {}
        indexes = [index for index, _, _ in needs]
        with self._write_lock:
            held: dict[int, list[str]] = {}
            for index, code in self._query(
                _RESERVED_FOR,
                {"sponsor": sponsor_id, "operation": operation_id, "indexes": indexes},
            ):
                held.setdefault(int(index), []).append(str(code))
            wanted: dict[int, list[tuple[int, int]]] = {}
            for index, tier, count in needs:
                if index not in held and count > 0:
                    wanted.setdefault(tier, []).append((index, count))
            now = datetime.now(UTC)
            rows: list[list[Any]] = []
            for tier, items in wanted.items():
                pool = [
                    str(row[0])
                    for row in self._query(
                        _AVAILABLE_CODES,
                        {"sponsor": sponsor_id, "tier": tier, "limit": sum(c for _, c in items)},
                    )
                ]
                taken = 0
                for index, count in items:
                    if taken + count > len(pool):
                        continue  # not enough left for this one: it gets none
                    codes = pool[taken : taken + count]
                    taken += count
                    held[index] = codes
                    rows.extend(
                        [sponsor_id, code, tier, operation_id, index, "reserved", now]
                        for code in codes
                    )
            if rows:
                self._writer.insert("code_reservations", rows, column_names=_RESERVATION_COLUMNS)
        for index, _, count in needs:
            if count == 0:
                held.setdefault(index, [])
        return held

    def available_codes(self, sponsor_id: int) -> dict[int, int]:
        """Available codes per subscription tier id."""
        return {int(row[0]): int(row[1]) for row in self.inventory(sponsor_id)}

    def inventory(self, sponsor_id: int) -> list[tuple[int, int, int, int, int]]:
        """(tier id, available, reserved, transferred, expired) per tier."""
        return [
            (int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in self._query(_INVENTORY, {"sponsor": sponsor_id})
        ]

    def existing_dealers(self, sponsor_id: int, emails: Sequence[str]) -> set[str]:
        """Which of ``emails`` (lower case) already belong to an invited dealer."""
        found: set[str] = set()
        for start in range(0, len(emails), 5000):
            rows = self._query(
                _EXISTING_DEALERS,
                {"sponsor": sponsor_id, "emails": list(emails[start : start + 5000])},
            )
            found.update(str(row[0]) for row in rows)
        return found

    def dealer_report(self, sponsor_id: int, operation_id: str) -> list[tuple[Any, ...]]:
        rows = self._query(_DEALER_REPORT, {"sponsor": sponsor_id, "operation": operation_id})
        return [(*row[:10], _utc(row[10])) for row in rows]

    def dealer_errors(
        self, sponsor_id: int, operation_id: str, limit: int = 100
    ) -> list[tuple[int, str, str, datetime | None]]:
        rows = self._query(
            _DEALER_ERRORS, {"sponsor": sponsor_id, "operation": operation_id, "limit": limit}
        )
        return [(int(r[0]), str(r[1]), str(r[2]), _utc(r[3])) for r in rows]

    def record_chunk(self, chunk: RecipientChunk, batches: Sequence[ItemBatch]) -> None:
        """A link send's recipient chunk as it arrived: its recipients (for retries) and its
        item batches (to hold, release or re-drive them later), in one go."""
        self.record_recipients(chunk)
        now = datetime.now(UTC)
        rows = [
            [b.sponsor_id, b.operation_id, b.batch_index, b.model_dump_json(), now] for b in batches
        ]
        if not rows:
            return
        with self._write_lock:
            self._writer.insert(
                "item_batches",
                rows,
                column_names=(
                    "sponsor_id",
                    "operation_id",
                    "batch_index",
                    "batch_json",
                    "stored_at",
                ),
            )

    def stored_result(self, batch: ItemBatch) -> ResultBatch | None:
        """The outcome of ``batch`` as the sink stored it, or None unless every item is stored.

        The sink writes a batch's items in one insert before it announces the batch, so a
        batch whose announcement was lost is recognised here and counted without being
        processed (or sent) again.
        """
        rows = self._query(
            _STORED_ITEMS,
            {
                "sponsor": batch.sponsor_id,
                "operation": batch.operation_id,
                "start": batch.start_index,
                "stop": batch.start_index + batch.count,
            },
        )
        if len(rows) != batch.count:
            return None
        statuses = [ItemStatus(row[1]) for row in rows]
        errors = [
            ItemError(
                item_index=int(row[0]),
                item_id=f"{batch.operation_id}:{int(row[0])}",
                error_code=str(row[3]),
                error_message=str(row[4] or ""),
                error_category=ErrorCategory(row[5]),
                is_retryable=bool(row[6]),
                retry_count=int(row[7]),
            )
            for row in rows
            if row[3] is not None and row[5] is not None
        ]
        return ResultBatch(
            operation_id=batch.operation_id,
            sponsor_id=batch.sponsor_id,
            operation_type=batch.operation_type,
            batch_index=batch.batch_index,
            start_index=batch.start_index,
            statuses=statuses,
            results=[row[2] for row in rows],
            errors=errors,
            processed_at=max(_utc(row[11]) or datetime.now(UTC) for row in rows),
            duration_ms=float(sum(row[8] for row in rows)),
            channel=Channel(rows[0][12]) if rows[0][12] else None,
            unit_cost=max(float(row[9]) for row in rows),
            attempts=[int(row[10]) for row in rows],
        )

    def item_batches(
        self, sponsor_id: int, operation_id: str, indexes: list[int]
    ) -> dict[int, str]:
        """Stored item batches' JSON by batch index (the message to send, as it was made)."""
        rows = self._query(
            _ITEM_BATCHES, {"sponsor": sponsor_id, "operation": operation_id, "indexes": indexes}
        )
        return {int(index): str(payload) for index, payload in rows}

    def duplicate_codes(self) -> int:
        """Codes stored for more than one item anywhere in the system (should be 0)."""
        return int(self._query(_DUPLICATE_CODES, {})[0][0])
