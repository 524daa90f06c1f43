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
import pyarrow.compute as pc

from analytics import arrow
from analytics.arrow import Same
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
    """Rows for one table, ready for one insert: Python rows, or (column-oriented) rows
    gathered batch by batch into Arrow columns (:class:`analytics.arrow.Columns`)."""

    table: str
    columns: tuple[str, ...]
    rows: list[list[Any]] = field(default_factory=list)
    gathered: arrow.Columns | None = None

    @property
    def column_oriented(self) -> bool:
        return self.gathered is not None

    def __len__(self) -> int:
        return len(self.gathered) if self.gathered is not None else len(self.rows)

    def arrow(self) -> pa.Table:
        """The column-oriented rows as one Arrow table."""
        if self.gathered is None:
            raise ValueError(f"rows of {self.table} are not column-oriented")
        return self.gathered.table()

    def records(self) -> list[dict[str, Any]]:
        """Every row as a dict by column (timestamps as :func:`ms` ticks)."""
        if self.gathered is not None:
            return arrow.records(self.arrow())
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


ITEM_TYPES = {
    "sponsor_id": arrow.INT,
    "operation_id": arrow.TEXT,
    "item_index": arrow.INT,
    "item_id": arrow.TEXT,
    "operation_type": arrow.TEXT,
    "status": arrow.TEXT,
    "result_data": arrow.TEXT,
    "error_code": arrow.TEXT,
    "error_message": arrow.TEXT,
    "error_category": arrow.TEXT,
    "is_retryable": arrow.BOOL,
    "retry_count": arrow.INT,
    "processed_at": arrow.MILLISECONDS_UTC,
    "processing_duration_ms": arrow.FLOAT,
    "channel": arrow.TEXT,
    "cost": arrow.FLOAT,
    "attempts": arrow.INT,
    "provider_latency_ms": arrow.FLOAT,
}
ITEM_COLUMNS = tuple(ITEM_TYPES)
CODE_TYPES = {
    "sponsor_id": arrow.INT,
    "operation_id": arrow.TEXT,
    "item_index": arrow.INT,
    "code": arrow.TEXT,
    "subscription_tier_id": arrow.INT,
    "batch_name": arrow.TEXT,
    "created_at": arrow.MILLISECONDS_UTC,
    "expires_at": arrow.MILLISECONDS_UTC,
}
CODE_COLUMNS = tuple(CODE_TYPES)
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
    """One ``items`` row per item of every batch (the sink's hot path: a batch adds a few
    values, and each column is built once for all of them)."""
    gathered = arrow.Columns(ITEM_COLUMNS, ITEM_TYPES.values(), complete=_default_item_ids)
    for batch in batches:
        gathered.add(len(batch.statuses), _item_segments(batch))
    return TableRows("items", ITEM_COLUMNS, gathered=gathered)


def _item_segments(batch: ResultBatch) -> list[arrow.Segment]:
    """The batch's part of each ``items`` column.

    A batch whose items share one outcome (every code of a code batch) is a few shared
    values; per-item work is left to the results and to the errors.
    """
    n = len(batch.statuses)
    statuses = batch.statuses
    status: arrow.Segment
    cost: arrow.Segment
    attempts: arrow.Segment
    uniform = n > 0 and statuses.count(statuses[0]) == n
    if uniform:
        status = Same(statuses[0].value)
        cost = Same(batch.unit_cost if statuses[0] is ItemStatus.SUCCESS else 0.0)
    else:
        status = [s.value for s in statuses]
        cost = [batch.unit_cost if s is ItemStatus.SUCCESS else 0.0 for s in statuses]
    if batch.attempts:
        attempts = arrow.each(batch.attempts)
    elif uniform:
        attempts = Same(0 if statuses[0] is ItemStatus.SKIPPED else 1)
    else:
        attempts = [0 if s is ItemStatus.SKIPPED else 1 for s in statuses]
    return [
        Same(batch.sponsor_id),
        Same(batch.operation_id),
        arrow.counting(batch.start_index, n),
        batch.item_ids or Same(None),
        Same(batch.operation_type.value),
        status,
        batch.results,
        *_error_segments(batch, n),
        Same(ms(batch.processed_at)),
        Same(batch.duration_ms / n if n else 0.0),
        Same(batch.channel.value if batch.channel else None),
        cost,
        attempts,
        arrow.each(batch.latencies_ms) if batch.latencies_ms else Same(0.0),
    ]


def _default_item_ids(items: pa.Table) -> pa.Table:
    """Items of batches that name none are ``{operation_id}:{item_index}``."""
    ids = items.column("item_id")
    if not ids.null_count:
        return items
    default = arrow.joined(items.column("operation_id"), ":", items.column("item_index"))
    return items.set_column(ITEM_COLUMNS.index("item_id"), "item_id", pc.coalesce(ids, default))


def _error_segments(batch: ResultBatch, n: int) -> list[arrow.Segment]:
    """The error columns: empty, but where an item failed (the last error of an item wins;
    an error naming an item outside the batch stores nothing)."""
    placed = [
        (offset, error)
        for error in batch.errors
        if 0 <= (offset := error.item_index - batch.start_index) < n
    ]
    if not placed:
        return [Same(None), Same(None), Same(None), Same(False), Same(0)]
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
    return [codes, messages, categories, retryable, retries]


def code_rows(batch: ResultBatch) -> TableRows:
    """The ``codes`` rows of a code-generation batch: one per generated code."""
    if batch.tier_id is None or batch.expires_at is None:
        raise ValueError(f"code batch {batch.batch_index} of {batch.operation_id} lacks its tier")
    n = len(batch.statuses)
    codes: Sequence[str | None] = batch.results
    indexes: arrow.Segment
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
        indexes = [index for index, _ in made]
        codes = [code for _, code in made]
        n = len(made)
    gathered = arrow.Columns(CODE_COLUMNS, CODE_TYPES.values())
    gathered.add(
        n,
        [
            Same(batch.sponsor_id),
            Same(batch.operation_id),
            indexes,
            codes,
            Same(batch.tier_id),
            Same(batch.batch_name),
            Same(ms(batch.processed_at)),
            Same(ms(batch.expires_at)),
        ],
    )
    return TableRows("codes", CODE_COLUMNS, gathered=gathered)


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
