"""In-memory fakes of the store's parts, for unit tests without a ClickHouse engine.

They implement the real interfaces over the *same rows* the real parts insert
(:mod:`analytics.rows`): each table is a dict keyed by the table's sorting key, where a later
write replaces an earlier one, as ``ReplacingMergeTree`` does once merged. What a fake reads
back is computed from those rows, so a test that writes through a fake and reads through it
exercises the real row builders. The integration tests run the same interfaces on chDB.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics import rows
from analytics.idempotency import StoredAnswer
from analytics.reader import CodeCounts
from analytics.rows import TableRows
from schemas.common import Channel, ErrorCategory, ItemError, ItemStatus, OperationType
from schemas.link_wire import DealerRow
from schemas.messages import ItemBatch, ItemsChunk, OperationRequested, ResultBatch

# Each table's sorting key: the identity of a row.
_KEYS: dict[str, tuple[str, ...]] = {
    "items": ("sponsor_id", "operation_id", "item_index"),
    "codes": ("sponsor_id", "operation_id", "item_index"),
    "operations": ("sponsor_id", "operation_id"),
    "operation_requests": ("sponsor_id", "operation_id"),
    "operation_snapshots": ("operation_id",),
    "recipients": ("sponsor_id", "operation_id", "item_index"),
    "item_batches": ("sponsor_id", "operation_id", "batch_index"),
    "code_reservations": ("sponsor_id", "code"),
    "dealer_invitations": ("sponsor_id", "operation_id", "item_index"),
    "templates": ("sponsor_id", "name"),
}


@dataclass
class MemoryTables:
    """The tables, as dicts of rows by sorting key."""

    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    inserts: list[str] = field(default_factory=list)

    def apply(self, table: TableRows) -> None:
        self.inserts.append(table.table)
        keys = _KEYS[table.table]
        into = self.tables.setdefault(table.table, {})
        for record in table.records():
            key = tuple(record[k] for k in keys)
            current = into.get(key)
            if current is None or record.get("version", 0) >= current.get("version", 0):
                into[key] = record

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self.tables.get(table, {}).values())

    def of(self, table: str, sponsor_id: int, operation_id: str) -> list[dict[str, Any]]:
        found = [
            r
            for r in self.rows(table)
            if r["sponsor_id"] == sponsor_id and r["operation_id"] == operation_id
        ]
        return sorted(found, key=lambda r: r.get("item_index", r.get("batch_index", 0)))


class MemoryWriter:
    """:class:`analytics.writer.ResultWriter` over :class:`MemoryTables`."""

    def __init__(self, tables: MemoryTables) -> None:
        self.tables = tables

    def insert_results(
        self, batches: Sequence[ResultBatch], extra: Sequence[TableRows] = ()
    ) -> int:
        for table in extra:
            self.tables.apply(table)
        items = rows.item_rows(batches)
        self.tables.apply(items)
        return len(items)

    def write(self, tables: Sequence[TableRows]) -> None:
        for table in tables:
            self.tables.apply(table)


class MemoryWorkerState:
    """:class:`analytics.worker_state.WorkerState` over :class:`MemoryTables`."""

    def __init__(self, tables: MemoryTables) -> None:
        self.tables = tables

    def request(self, sponsor_id: int, operation_id: str) -> OperationRequested | None:
        found = self.tables.tables.get("operation_requests", {}).get((sponsor_id, operation_id))
        return (
            None if found is None else OperationRequested.model_validate_json(found["request_json"])
        )

    def record_chunk(self, chunk: ItemsChunk, batches: Sequence[ItemBatch]) -> None:
        for table in rows.chunk_rows(chunk, batches):
            self.tables.apply(table)

    def item_batches(
        self, sponsor_id: int, operation_id: str, indexes: list[int]
    ) -> dict[int, str]:
        wanted = set(indexes)
        return {
            r["batch_index"]: r["batch_json"]
            for r in self.tables.of("item_batches", sponsor_id, operation_id)
            if r["batch_index"] in wanted
        }

    def stored_result(self, batch: ItemBatch) -> ResultBatch | None:
        stop = batch.start_index + batch.count
        found = [
            r
            for r in self.tables.of("items", batch.sponsor_id, batch.operation_id)
            if batch.start_index <= r["item_index"] < stop
        ]
        if len(found) != batch.count:
            return None
        return ResultBatch(
            operation_id=batch.operation_id,
            sponsor_id=batch.sponsor_id,
            operation_type=batch.operation_type,
            batch_index=batch.batch_index,
            start_index=batch.start_index,
            statuses=[ItemStatus(r["status"]) for r in found],
            results=[r["result_data"] for r in found],
            errors=[_error(r) for r in found if r["error_code"] is not None],
            processed_at=max(rows.from_ms(r["processed_at"]) for r in found),
            duration_ms=sum(r["processing_duration_ms"] for r in found),
            channel=Channel(found[0]["channel"]) if found[0]["channel"] else None,
            unit_cost=max(r["cost"] for r in found),
            attempts=[r["attempts"] for r in found],
            item_ids=[r["item_id"] for r in found] if batch.job is not None else [],
        )

    def reserve_codes(
        self, sponsor_id: int, operation_id: str, needs: Sequence[tuple[int, int, int]]
    ) -> dict[int, list[str]]:
        held: dict[int, list[str]] = {}
        wanted_indexes = {index for index, _, _ in needs}
        for r in self.tables.rows("code_reservations"):
            if (
                r["sponsor_id"] == sponsor_id
                and r["operation_id"] == operation_id
                and r["item_index"] in wanted_indexes
                and r["state"] != "released"
            ):
                held.setdefault(r["item_index"], []).append(r["code"])
        granted: list[tuple[int, int, list[str]]] = []
        for index, tier, count in needs:
            if index in held or count == 0:
                continue
            pool = MemoryInventory(self.tables).free_codes(sponsor_id, tier)
            pool = [c for c in pool if all(c not in g[2] for g in granted)]
            if count <= len(pool):
                held[index] = pool[:count]
                granted.append((index, tier, held[index]))
        self.tables.apply(rows.reservation_rows(sponsor_id, operation_id, granted))
        for index, _, count in needs:
            if count == 0:
                held.setdefault(index, [])
        return held


class MemoryInventory:
    """The submit-time lookups of :class:`analytics.inventory.InventoryReader`."""

    def __init__(self, tables: MemoryTables) -> None:
        self.tables = tables

    def known_codes(self, sponsor_id: int, codes: Iterable[str]) -> set[str]:
        mine = {r["code"] for r in self.tables.rows("codes") if r["sponsor_id"] == sponsor_id}
        return mine & set(codes)

    def free_codes(self, sponsor_id: int, tier: int) -> list[str]:
        """Unexpired codes of a tier that no reservation holds, oldest expiry first."""
        now = datetime.now(UTC)
        taken = {
            r["code"]
            for r in self.tables.rows("code_reservations")
            if r["sponsor_id"] == sponsor_id and r["state"] != "released"
        }
        free = [
            r
            for r in self.tables.rows("codes")
            if r["sponsor_id"] == sponsor_id
            and r["subscription_tier_id"] == tier
            and rows.from_ms(r["expires_at"]) > now
            and r["code"] not in taken
        ]
        free.sort(key=lambda r: (rows.from_ms(r["expires_at"]), r["operation_id"], r["item_index"]))
        return [r["code"] for r in free]

    def available_codes(self, sponsor_id: int) -> dict[int, int]:
        tiers = {
            r["subscription_tier_id"]
            for r in self.tables.rows("codes")
            if r["sponsor_id"] == sponsor_id
        }
        return {tier: len(self.free_codes(sponsor_id, tier)) for tier in sorted(tiers)}

    def existing_dealers(self, sponsor_id: int, emails: Sequence[str]) -> set[str]:
        invited = {
            r["email"]
            for r in self.tables.rows("dealer_invitations")
            if r["sponsor_id"] == sponsor_id and r["status"] == ItemStatus.SUCCESS.value
        }
        return invited & set(emails)


class MemoryTemplates:
    """:class:`analytics.templates.Templates` over :class:`MemoryTables`."""

    def __init__(self, tables: MemoryTables) -> None:
        self.tables = tables

    def save(self, sponsor_id: int, **fields: Any) -> None:
        self.tables.apply(
            TableRows(
                "templates",
                rows.TEMPLATE_COLUMNS,
                [
                    [
                        sponsor_id,
                        *(fields[c] for c in rows.TEMPLATE_COLUMNS[1:-1]),
                        datetime.now(UTC),
                    ]
                ],
            )
        )

    def list(self, sponsor_id: int) -> list[tuple[Any, ...]]:
        mine = [r for r in self.tables.rows("templates") if r["sponsor_id"] == sponsor_id]
        return [
            tuple(r[c] for c in rows.TEMPLATE_COLUMNS[1:])
            for r in sorted(mine, key=lambda r: r["name"])
        ]


class MemoryIdempotencyKeys:
    """:class:`analytics.idempotency.IdempotencyKeys` in a dict (no TTL: tests are short)."""

    def __init__(self) -> None:
        self.answers: dict[tuple[int, str, str], StoredAnswer] = {}

    def find(self, sponsor_id: int, scope: str, key: str) -> StoredAnswer | None:
        return self.answers.get((sponsor_id, scope, key))

    def remember(self, sponsor_id: int, scope: str, key: str, answer: StoredAnswer) -> None:
        self.answers.setdefault((sponsor_id, scope, key), answer)


class MemoryCounts:
    """The counting reads of :class:`analytics.reader.Reader` that tests check results with."""

    def __init__(self, tables: MemoryTables) -> None:
        self.tables = tables
        self.down = False  # what ping() reports

    def ping(self) -> None:
        if self.down:
            raise ConnectionError("ClickHouse does not answer (fake)")

    def item_counts(self, sponsor_id: int, operation_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.tables.of("items", sponsor_id, operation_id):
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return counts

    def code_counts(self, sponsor_id: int, operation_id: str) -> CodeCounts:
        found = self.tables.of("codes", sponsor_id, operation_id)
        return CodeCounts(
            items=len({r["item_index"] for r in found}),
            unique_codes=len({r["code"] for r in found}),
            rows=len(found),
        )


@dataclass
class MemoryStore:
    """The parts of :class:`analytics.store.AnalyticsStore` the worker and the submit paths
    use, sharing one :class:`MemoryTables`."""

    tables: MemoryTables = field(default_factory=MemoryTables)

    def __post_init__(self) -> None:
        self.writer = MemoryWriter(self.tables)
        self.state = MemoryWorkerState(self.tables)
        self.inventory = MemoryInventory(self.tables)
        self.templates = MemoryTemplates(self.tables)
        self.idempotency = MemoryIdempotencyKeys()
        self.reader = MemoryCounts(self.tables)

    def close(self) -> None:
        pass

    def stock_codes(self, sponsor_id: int, tier_id: int, codes: Sequence[str]) -> None:
        """Codes as a code-generation operation would have stored them (valid 30 days)."""
        moment = datetime.now(UTC)
        result = ResultBatch(
            operation_id=f"codegen_{uuid.uuid4().hex}",
            sponsor_id=sponsor_id,
            operation_type=OperationType.CODE_GENERATION,
            batch_index=0,
            start_index=0,
            statuses=[ItemStatus.SUCCESS] * len(codes),
            results=list(codes),
            processed_at=moment,
            duration_ms=0.0,
            tier_id=tier_id,
            expires_at=moment + timedelta(days=30),
        )
        self.writer.insert_results([result], [rows.code_rows(result)])

    def invited(self, sponsor_id: int, emails: Sequence[str]) -> None:
        """Dealers as an invitation that went out would have recorded them."""
        dealers: list[DealerRow | None] = [
            DealerRow(
                row_number=2 + i,
                email=email,
                phone="+905320000000",
                dealer_name=email,
                tier="S",
                tier_id=1,
                code_count=0,
                token=uuid.uuid4().hex,
                invitation_type="Invite",
            )
            for i, email in enumerate(emails)
        ]
        result = ResultBatch(
            operation_id=f"bulk_{uuid.uuid4().hex}",
            sponsor_id=sponsor_id,
            operation_type=OperationType.DEALER_INVITATION,
            batch_index=0,
            start_index=0,
            statuses=[ItemStatus.SUCCESS] * len(dealers),
            results=[None] * len(dealers),
            processed_at=datetime.now(UTC),
            duration_ms=0.0,
            dealers=dealers,
        )
        self.writer.insert_results([result], rows.dealer_rows(result))


def _error(record: dict[str, Any]) -> ItemError:
    return ItemError(
        item_index=record["item_index"],
        item_id=record["item_id"],
        error_code=record["error_code"],
        error_message=record["error_message"] or "",
        error_category=ErrorCategory(record["error_category"]),
        is_retryable=record["is_retryable"],
        retry_count=record["retry_count"],
    )
