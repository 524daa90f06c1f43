"""Rows for each table, built from the flow's messages: pure functions, one per table.

Column lists live here, next to the builders that fill them in order; the tables themselves
are in ``sql/schema.sql``. Operation kinds pick the builders for what they store beside the
items (codes, dealer invitations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from analytics import arrow
from schemas.common import ItemStatus
from schemas.messages import ItemBatch, ItemsChunk, OperationRequested, RecipientChunk, ResultBatch
from schemas.status import OperationSnapshot

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def ms(moment: datetime) -> int:
    """A ``DateTime64(3)`` value as its integer ticks: clickhouse-connect writes ints as they
    are, where converting a ``datetime`` per row costs more than the rest of the insert."""
    return (moment - _EPOCH) // _MILLISECOND


def from_ms(ticks: int | datetime) -> datetime:
    """The inverse of :func:`ms` (datetimes pass through)."""
    return ticks if isinstance(ticks, datetime) else _EPOCH + ticks * _MILLISECOND


@dataclass
class TableRows:
    """Rows for one table, ready for one insert: Python rows, or (column-oriented) Arrow
    tables of ``columns``, one per message they came from (:mod:`analytics.arrow`)."""

    table: str
    columns: tuple[str, ...]
    rows: list[list[Any]] = field(default_factory=list)
    column_oriented: bool = False
    chunks: list[pa.Table] = field(default_factory=list)

    def __len__(self) -> int:
        if self.column_oriented:
            return sum(chunk.num_rows for chunk in self.chunks)
        return len(self.rows)

    def arrow(self) -> pa.Table:
        """The column-oriented rows as one Arrow table."""
        return arrow.concatenated(self.chunks)

    def records(self) -> list[dict[str, Any]]:
        """Every row as a dict by column (timestamps as :func:`ms` ticks)."""
        if self.column_oriented:
            return [r for chunk in self.chunks for r in arrow.records(chunk)]
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


ITEM_COLUMNS = (
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
    "provider_latency_ms",
)
CODE_COLUMNS = (
    "sponsor_id",
    "operation_id",
    "item_index",
    "code",
    "subscription_tier_id",
    "batch_name",
    "created_at",
    "expires_at",
)
OPERATION_COLUMNS = (
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
    "job_type",
)
RESERVATION_COLUMNS = (
    "sponsor_id",
    "code",
    "subscription_tier_id",
    "operation_id",
    "item_index",
    "state",
    "updated_at",
)
DEALER_COLUMNS = (
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
REQUEST_COLUMNS = ("operation_id", "sponsor_id", "requested_at", "request_json")
RECIPIENT_COLUMNS = (
    "sponsor_id",
    "operation_id",
    "item_index",
    "name",
    "address",
    "message",
    "idempotency_key",
    "dealer_json",
)
BATCH_COLUMNS = ("sponsor_id", "operation_id", "batch_index", "batch_json", "stored_at")
TEMPLATE_COLUMNS = (
    "sponsor_id",
    "name",
    "channel",
    "message",
    "batch_size",
    "max_concurrency",
    "retry_attempts",
    "updated_at",
)


def item_rows(batches: Sequence[ResultBatch]) -> TableRows:
    """One ``items`` row per item of every batch, an Arrow table per batch (the sink's hot
    path)."""
    return TableRows(
        "items", ITEM_COLUMNS, column_oriented=True, chunks=[_item_table(b) for b in batches]
    )


def _item_table(batch: ResultBatch) -> pa.Table:
    """The batch's ``items`` rows.

    A batch whose items share one outcome (every code of a code batch) is a few repeated
    values; per-item work is left to the results and to the errors.
    """
    n = len(batch.statuses)
    statuses = batch.statuses
    uniform = n > 0 and statuses.count(statuses[0]) == n
    indexes = arrow.counting(batch.start_index, n)
    if uniform:
        status = arrow.repeated(statuses[0].value, n, arrow.TEXT)
        cost = arrow.repeated(
            batch.unit_cost if statuses[0] is ItemStatus.SUCCESS else 0.0, n, arrow.FLOAT
        )
    else:
        status = pa.array([s.value for s in statuses], arrow.TEXT)
        cost = pa.array(
            [batch.unit_cost if s is ItemStatus.SUCCESS else 0.0 for s in statuses], arrow.FLOAT
        )
    if batch.attempts:
        attempts = arrow.values(batch.attempts, arrow.INT)
    elif uniform:
        attempts = arrow.repeated(0 if statuses[0] is ItemStatus.SKIPPED else 1, n, arrow.INT)
    else:
        attempts = pa.array([0 if s is ItemStatus.SKIPPED else 1 for s in statuses], arrow.INT)
    channel = batch.channel.value if batch.channel else None
    return arrow.table(
        ITEM_COLUMNS,
        [
            arrow.repeated(batch.sponsor_id, n, arrow.INT),
            arrow.repeated(batch.operation_id, n, arrow.TEXT),
            indexes,
            (
                pa.array(batch.item_ids, arrow.TEXT)
                if batch.item_ids
                else arrow.prefixed(f"{batch.operation_id}:", indexes)
            ),
            arrow.repeated(batch.operation_type.value, n, arrow.TEXT),
            status,
            pa.array(batch.results, arrow.TEXT),
            *_error_arrays(batch, n),
            arrow.repeated(ms(batch.processed_at), n, arrow.MILLISECONDS_UTC),
            arrow.repeated(batch.duration_ms / n if n else 0.0, n, arrow.FLOAT),
            arrow.repeated(channel, n, arrow.TEXT),
            cost,
            attempts,
            (
                arrow.values(batch.latencies_ms, arrow.FLOAT)
                if batch.latencies_ms
                else arrow.repeated(0.0, n, arrow.FLOAT)
            ),
        ],
    )


def _error_arrays(batch: ResultBatch, n: int) -> list[pa.Array]:
    """The error columns: empty, but where an item failed (the last error of an item wins;
    an error naming an item outside the batch stores nothing)."""
    placed = [
        (offset, error)
        for error in batch.errors
        if 0 <= (offset := error.item_index - batch.start_index) < n
    ]
    if not placed:
        return [
            arrow.repeated(None, n, arrow.TEXT),
            arrow.repeated(None, n, arrow.TEXT),
            arrow.repeated(None, n, arrow.TEXT),
            arrow.repeated(False, n, arrow.BOOL),
            arrow.repeated(0, n, arrow.INT),
        ]
    codes: list[str | None] = [None] * n
    messages: list[str | None] = [None] * n
    categories: list[str | None] = [None] * n
    retryable = [False] * n
    retries = [0] * n
    for offset, error in placed:
        codes[offset] = error.error_code
        messages[offset] = error.error_message
        categories[offset] = error.error_category.value
        retryable[offset] = error.is_retryable
        retries[offset] = error.retry_count
    return [
        pa.array(codes, arrow.TEXT),
        pa.array(messages, arrow.TEXT),
        pa.array(categories, arrow.TEXT),
        pa.array(retryable, arrow.BOOL),
        pa.array(retries, arrow.INT),
    ]


def code_rows(batch: ResultBatch) -> TableRows:
    """The ``codes`` rows of a code-generation batch: one per generated code."""
    if batch.tier_id is None or batch.expires_at is None:
        raise ValueError(f"code batch {batch.batch_index} of {batch.operation_id} lacks its tier")
    n = len(batch.statuses)
    codes: Sequence[str | None] = batch.results
    if batch.statuses.count(ItemStatus.SUCCESS) == n and None not in codes:
        indexes = arrow.counting(batch.start_index, n)
    else:
        made = [
            (index, code)
            for index, status, code in zip(
                range(batch.start_index, batch.start_index + n), batch.statuses, codes, strict=True
            )
            if status is ItemStatus.SUCCESS and code is not None
        ]
        indexes = pa.array([index for index, _ in made], arrow.INT)
        codes = [code for _, code in made]
        n = len(made)
    chunk = arrow.table(
        CODE_COLUMNS,
        [
            arrow.repeated(batch.sponsor_id, n, arrow.INT),
            arrow.repeated(batch.operation_id, n, arrow.TEXT),
            indexes,
            pa.array(codes, arrow.TEXT),
            arrow.repeated(batch.tier_id, n, arrow.INT),
            arrow.repeated(batch.batch_name, n, arrow.TEXT),
            arrow.repeated(ms(batch.processed_at), n, arrow.MILLISECONDS_UTC),
            arrow.repeated(ms(batch.expires_at), n, arrow.MILLISECONDS_UTC),
        ],
    )
    return TableRows("codes", CODE_COLUMNS, column_oriented=True, chunks=[chunk])


def dealer_rows(batch: ResultBatch) -> list[TableRows]:
    """Invitation rows, and each dealer's codes moved to transferred (success) or given back."""
    invitations = TableRows("dealer_invitations", DEALER_COLUMNS)
    reservations = TableRows("code_reservations", RESERVATION_COLUMNS)
    if batch.dealers is None:
        return []
    errors = {e.item_index: e for e in batch.errors}
    now = datetime.now(UTC)
    for offset, (dealer, status) in enumerate(zip(batch.dealers, batch.statuses, strict=True)):
        if dealer is None:
            continue
        index = batch.start_index + offset
        error = errors.get(index)
        succeeded = status is ItemStatus.SUCCESS
        invitations.rows.append(
            [
                batch.sponsor_id,
                batch.operation_id,
                index,
                dealer.row_number,
                dealer.email,
                dealer.phone,
                dealer.dealer_name,
                dealer.tier,
                dealer.codes if succeeded else [],
                dealer.token,
                dealer.invitation_type,
                status.value,
                error.error_code if error else None,
                error.error_message if error else None,
                batch.processed_at,
            ]
        )
        state = "transferred" if succeeded else "released"
        reservations.rows.extend(
            [batch.sponsor_id, code, dealer.tier_id, batch.operation_id, index, state, now]
            for code in dealer.codes
        )
    return [invitations, reservations]


def reservation_rows(
    sponsor_id: int, operation_id: str, reserved: Sequence[tuple[int, int, list[str]]]
) -> TableRows:
    """Codes reserved for items: ``(item_index, tier_id, codes)`` each."""
    now = datetime.now(UTC)
    return TableRows(
        "code_reservations",
        RESERVATION_COLUMNS,
        [
            [sponsor_id, code, tier, operation_id, index, "reserved", now]
            for index, tier, codes in reserved
            for code in codes
        ],
    )


def operation_row(
    snapshot: OperationSnapshot,
    *,
    subscription_tier_id: int | None = None,
    code_prefix: str | None = None,
    channel: str | None = None,
    total_cost: float = 0.0,
) -> TableRows:
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
        snapshot.job_type,
    ]
    return TableRows("operations", OPERATION_COLUMNS, [row])


SNAPSHOT_COLUMNS = ("operation_id", "sponsor_id", "finished_at", "version", "snapshot_json")


def snapshot_row(snapshot: OperationSnapshot) -> TableRows:
    """A finished operation's last snapshot, as the API will answer it once archived."""
    row = [
        snapshot.operation_id,
        snapshot.sponsor_id,
        snapshot.completed_at or snapshot.last_updated,
        snapshot.version,
        snapshot.model_dump_json(),
    ]
    return TableRows("operation_snapshots", SNAPSHOT_COLUMNS, [row])


def request_row(request: OperationRequested) -> TableRows:
    row = [
        request.operation_id,
        request.sponsor_id,
        request.requested_at,
        request.model_dump_json(),
    ]
    return TableRows("operation_requests", REQUEST_COLUMNS, [row])


def recipient_rows(chunk: RecipientChunk) -> TableRows:
    """A link send's sendable recipients, so its failures can be retried later."""
    return TableRows(
        "recipients",
        RECIPIENT_COLUMNS,
        [
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
        ],
    )


def chunk_rows(chunk: ItemsChunk, batches: Sequence[ItemBatch]) -> list[TableRows]:
    """What a chunk of items leaves in the store: its item batches (to hold, release or
    re-drive them later) and, for a link send, its recipients (for retries)."""
    tables = [batch_rows(batches)]
    if isinstance(chunk, RecipientChunk):
        tables.insert(0, recipient_rows(chunk))
    return tables


def batch_rows(batches: Sequence[ItemBatch]) -> TableRows:
    now = datetime.now(UTC)
    return TableRows(
        "item_batches",
        BATCH_COLUMNS,
        [[b.sponsor_id, b.operation_id, b.batch_index, b.model_dump_json(), now] for b in batches],
    )
