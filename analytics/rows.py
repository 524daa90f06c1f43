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
    """Rows for one table, ready for one insert (column-oriented: one list per column)."""

    table: str
    columns: tuple[str, ...]
    rows: list[list[Any]] = field(default_factory=list)
    column_oriented: bool = False
    # Column-oriented: the columns holding ``ms()`` ticks of a DateTime64(3).
    timestamps: tuple[str, ...] = ()

    def __len__(self) -> int:
        if self.column_oriented:
            return len(self.rows[0]) if self.rows else 0
        return len(self.rows)


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
    """One ``items`` row per item of every batch, column-oriented (the sink's hot path)."""
    columns: list[list[Any]] = [[] for _ in ITEM_COLUMNS]
    for batch in batches:
        _add_items(batch, columns)
    return TableRows(
        "items", ITEM_COLUMNS, columns, column_oriented=True, timestamps=("processed_at",)
    )


def _add_items(batch: ResultBatch, items: list[list[Any]]) -> None:
    """Extend the ``items`` columns with the batch's rows.

    Built a column at a time from lists the size of the batch, never a Python step per item
    and column: a batch whose items share one outcome (every code of a code batch) costs a
    few list multiplications, and the per-item work is left to the errors alone.
    """
    n = len(batch.statuses)
    op = batch.operation_id
    indexes = range(batch.start_index, batch.start_index + n)
    statuses = batch.statuses
    uniform = n > 0 and statuses.count(statuses[0]) == n
    items[0].extend([batch.sponsor_id] * n)
    items[1].extend([op] * n)
    items[2].extend(indexes)
    items[3].extend(batch.item_ids or [f"{op}:{i}" for i in indexes])
    items[4].extend([batch.operation_type.value] * n)
    items[5].extend([statuses[0].value] * n if uniform else [s.value for s in statuses])
    items[6].extend(batch.results)
    _add_errors(batch, n, items)
    items[12].extend([ms(batch.processed_at)] * n)
    items[13].extend([batch.duration_ms / n if n else 0.0] * n)
    items[14].extend([batch.channel.value if batch.channel else None] * n)
    if uniform:
        cost = batch.unit_cost if statuses[0] is ItemStatus.SUCCESS else 0.0
        items[15].extend([cost] * n)
    else:
        items[15].extend([batch.unit_cost if s is ItemStatus.SUCCESS else 0.0 for s in statuses])
    if batch.attempts:
        items[16].extend(batch.attempts)
    elif uniform:
        items[16].extend([0 if statuses[0] is ItemStatus.SKIPPED else 1] * n)
    else:
        items[16].extend([0 if s is ItemStatus.SKIPPED else 1 for s in statuses])
    items[17].extend(batch.latencies_ms or [0.0] * n)


def _add_errors(batch: ResultBatch, n: int, items: list[list[Any]]) -> None:
    """The error columns (7 to 11): empty values, overwritten where an item failed."""
    codes: list[str | None] = [None] * n
    messages: list[str | None] = [None] * n
    categories: list[str | None] = [None] * n
    retryable = [False] * n
    retries = [0] * n
    for error in batch.errors:
        offset = error.item_index - batch.start_index
        if not 0 <= offset < n:
            continue  # an error naming an item outside the batch stores nothing, as before
        codes[offset] = error.error_code
        messages[offset] = error.error_message
        categories[offset] = error.error_category.value
        retryable[offset] = error.is_retryable
        retries[offset] = error.retry_count
    items[7].extend(codes)
    items[8].extend(messages)
    items[9].extend(categories)
    items[10].extend(retryable)
    items[11].extend(retries)


def code_rows(batch: ResultBatch) -> TableRows:
    """The ``codes`` rows of a code-generation batch: one per generated code."""
    if batch.tier_id is None or batch.expires_at is None:
        raise ValueError(f"code batch {batch.batch_index} of {batch.operation_id} lacks its tier")
    n = len(batch.statuses)
    indexes: Sequence[int] = range(batch.start_index, batch.start_index + n)
    codes: Sequence[str | None] = batch.results
    if batch.statuses.count(ItemStatus.SUCCESS) != n or None in codes:
        made = [
            (index, code)
            for index, status, code in zip(indexes, batch.statuses, codes, strict=True)
            if status is ItemStatus.SUCCESS and code is not None
        ]
        indexes, codes = [index for index, _ in made], [code for _, code in made]
        n = len(made)
    columns: list[list[Any]] = [
        [batch.sponsor_id] * n,
        [batch.operation_id] * n,
        list(indexes),
        list(codes),
        [batch.tier_id] * n,
        [batch.batch_name] * n,
        [ms(batch.processed_at)] * n,
        [ms(batch.expires_at)] * n,
    ]
    return TableRows(
        "codes",
        CODE_COLUMNS,
        columns,
        column_oriented=True,
        timestamps=("created_at", "expires_at"),
    )


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
