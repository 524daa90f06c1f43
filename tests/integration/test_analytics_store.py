"""The ClickHouse layer on the real engine: chDB in this process, or a server over HTTP.

chDB allows one data directory per process, so every test here shares one directory and
gets its own database instead. Set BULKOPS_TEST_CLICKHOUSE_URL (``http://user:pass@host:8123``)
to run the same tests against a ClickHouse server too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics import rows
from analytics.store import AnalyticsStore
from schemas.common import ErrorCategory, ItemStatus, OperationStatus, OperationType
from schemas.messages import (
    ItemBatch,
    ItemError,
    OperationRequested,
    OperationSnapshot,
    PreparedRecipient,
    RecipientChunk,
    ResultBatch,
)

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
HTTP_URL = os.environ.get("BULKOPS_TEST_CLICKHOUSE_URL")


@pytest.fixture(
    params=[
        "chdb",
        pytest.param(
            "http",
            marks=[
                pytest.mark.clickhouse_http,
                pytest.mark.skipif(not HTTP_URL, reason="BULKOPS_TEST_CLICKHOUSE_URL is not set"),
            ],
        ),
    ]
)
def store(request: pytest.FixtureRequest, chdb_dir: Path) -> Iterator[AnalyticsStore]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    dsn = HTTP_URL if request.param == "http" else None
    opened = AnalyticsStore.open(dsn=dsn, chdb_path=chdb_dir, database=database)
    try:
        yield opened
    finally:
        opened.drop_database()
        opened.close()


def result(
    op: str, batch: int, start: int, n: int, sponsor: int = 7, failed: set[int] | None = None
) -> ResultBatch:
    failed = failed or set()
    statuses = [
        ItemStatus.FAILED if i in failed else ItemStatus.SUCCESS for i in range(start, start + n)
    ]
    return ResultBatch(
        operation_id=op,
        sponsor_id=sponsor,
        operation_type=OperationType.CODE_GENERATION,
        batch_index=batch,
        start_index=start,
        statuses=statuses,
        results=[None if i in failed else f"P-{op[-6:]}-{i:06d}" for i in range(start, start + n)],
        errors=[
            ItemError(
                item_index=i,
                item_id=f"{op}:{i}",
                error_code="TEST",
                error_message="x",
                error_category=ErrorCategory.PROCESSING,
            )
            for i in sorted(failed)
        ],
        processed_at=NOW,
        duration_ms=5.0,
        tier_id=2,
        expires_at=NOW + timedelta(days=30),
        batch_name="North",
    )


def sink(store: AnalyticsStore, batches: list[ResultBatch]) -> int:
    """What the sink writes for code-generation results: the items, and the codes."""
    return store.writer.insert_results(batches, [rows.code_rows(b) for b in batches])


def op_id() -> str:
    return f"codegen_{uuid.uuid4().hex}"


def test_schema_creation_is_idempotent(store: AnalyticsStore) -> None:
    store.connection.ensure_schema()
    store.connection.ensure_schema()


def test_replayed_batches_do_not_duplicate_rows(store: AnalyticsStore) -> None:
    op = op_id()
    batches = [result(op, b, b * 100, 100, failed={5} if b == 0 else None) for b in range(5)]
    sink(store, batches)
    sink(store, batches[1:3])  # a replay after a crash
    sink(store, [batches[4]])
    counts = store.reader.code_counts(7, op)
    assert (counts.items, counts.unique_codes) == (499, 499)
    assert store.reader.item_counts(7, op) == {"Success": 499, "Failed": 1}
    assert store.reader.duplicate_codes() == 0
    page = store.reader.codes_page(7, op, after_index=98, limit=3)
    assert [row[0] for row in page] == [98, 99, 100]
    assert page[0][4] == NOW + timedelta(days=30)


def snapshot(
    op: str, sponsor: int, status: OperationStatus, version: int, created: datetime
) -> OperationSnapshot:
    return OperationSnapshot(
        operation_id=op,
        sponsor_id=sponsor,
        operation_type=OperationType.CODE_GENERATION,
        operation_name=f"name {op[-4:]}",
        requested_by="u",
        status=status,
        total_items=10,
        processed_items=10 if status.is_terminal else 0,
        successful_items=10 if status.is_terminal else 0,
        created_at=created,
        started_at=created,
        completed_at=created + timedelta(seconds=3) if status.is_terminal else None,
        last_updated=created,
        current_phase="x",
        status_message="x",
        version=version,
    )


def request(op: str, sponsor: int) -> OperationRequested:
    return OperationRequested.model_validate(
        {
            "operationId": op,
            "operationType": "BulkCodeGeneration",
            "sponsorId": sponsor,
            "requestedBy": "u",
            "requestedAt": NOW,
            "totalItems": 10,
            "codeGeneration": {"subscriptionTierId": 3, "quantity": 10, "codePrefix": "ZZ"},
        }
    )


def test_history_keeps_the_newest_version_pages_newest_first_and_isolates_sponsors(
    store: AnalyticsStore,
) -> None:
    ops = [op_id() for _ in range(5)]
    for i, op in enumerate(ops):
        created = NOW + timedelta(minutes=i)
        sponsor = 7 if i < 4 else 8
        store.writer.record_request(request(op, sponsor))
        for status, version in ((OperationStatus.PROCESSING, 1), (OperationStatus.COMPLETED, 9)):
            store.writer.upsert_operation(
                snapshot(op, sponsor, status, version, created),
                subscription_tier_id=3,
                code_prefix="ZZ",
            )
        store.writer.upsert_operation(snapshot(op, sponsor, OperationStatus.PROCESSING, 1, created))

    first = store.reader.history(7, limit=3, offset=0)
    second = store.reader.history(7, limit=3, offset=3)
    assert [r.operation_id for r in first + second] == list(reversed(ops[:4]))
    assert {r.status for r in first + second} == {"Completed"}
    assert first[0].subscription_tier_id == 3 and first[0].code_prefix == "ZZ"
    assert first[0].created_at.tzinfo is not None
    assert store.reader.history_count(7) == 4
    assert store.reader.history_count(8) == 1
    assert store.reader.history_count(None) == 5
    assert [r.operation_id for r in store.reader.history(8, limit=10, offset=0)] == [ops[4]]


def test_user_strings_are_bound_not_spliced(store: AnalyticsStore) -> None:
    hostile = "x' OR 1=1 --"
    assert store.reader.codes_page(7, hostile, after_index=0, limit=10) == []
    assert store.reader.code_counts(7, hostile).items == 0


def test_a_stored_batch_is_recognised_from_its_items(store: AnalyticsStore) -> None:
    """The watchdog counts a batch whose announcement was lost from the items it stored."""
    op = op_id()
    stored = result(op, 3, 300, 100, failed={310, 311})
    sink(store, [stored])
    batch = ItemBatch(
        operation_id=op,
        sponsor_id=7,
        operation_type=OperationType.CODE_GENERATION,
        batch_index=3,
        start_index=300,
        count=100,
    )
    found = store.state.stored_result(batch)
    assert found is not None
    assert (found.batch_index, found.start_index, len(found.statuses)) == (3, 300, 100)
    assert found.statuses.count(ItemStatus.FAILED) == 2
    assert [e.item_index for e in found.errors] == [310, 311]
    assert found.errors[0].error_category is ErrorCategory.PROCESSING
    assert found.results[0] == stored.results[0]
    assert found.duration_ms == pytest.approx(stored.duration_ms)

    missing = batch.model_copy(update={"batch_index": 4, "start_index": 400})
    assert store.state.stored_result(missing) is None
    longer = batch.model_copy(update={"count": 101})  # one item of the range never stored
    assert store.state.stored_result(longer) is None
    other_sponsor = batch.model_copy(update={"sponsor_id": 8})
    assert store.state.stored_result(other_sponsor) is None


def test_item_batches_are_kept_per_operation(store: AnalyticsStore) -> None:
    op = op_id()
    chunk = RecipientChunk(
        operation_id=op.replace("codegen_", "bulk_"),
        sponsor_id=7,
        chunk_index=0,
        start_index=0,
        recipients=[
            PreparedRecipient(index=i, name=f"n{i}", address=f"+90532000000{i}", message="m")
            for i in range(4)
        ],
    )
    batches = [
        ItemBatch(
            operation_id=chunk.operation_id,
            sponsor_id=7,
            operation_type=OperationType.LINK_SEND,
            batch_index=b,
            start_index=2 * b,
            count=2,
            recipients=chunk.recipients[2 * b : 2 * b + 2],
        )
        for b in range(2)
    ]
    store.state.record_chunk(chunk, batches)
    store.state.record_chunk(chunk, batches)  # a replayed chunk
    kept = store.state.item_batches(7, chunk.operation_id, [0, 1, 2])
    assert sorted(kept) == [0, 1]
    assert ItemBatch.model_validate_json(kept[1]) == batches[1]
    assert store.state.item_batches(8, chunk.operation_id, [0, 1]) == {}
    assert len(store.reader.recipients(7, chunk.operation_id, [0, 1, 2, 3])) == 4


def test_views_show_one_row_per_thing_at_its_latest_version(store: AnalyticsStore) -> None:
    op = op_id()
    batches = [result(op, b, b * 10, 10, failed={3}) for b in range(3)]
    sink(store, batches)
    sink(store, batches[:2])  # replayed after a crash: the raw tables hold these twice
    store.writer.record_request(request(op, 7))
    for status, version in ((OperationStatus.PROCESSING, 1), (OperationStatus.COMPLETED, 5)):
        store.writer.upsert_operation(snapshot(op, 7, status, version, NOW))
    scope = {"op": op}
    raw = store.connection.query(
        "SELECT count() FROM items WHERE operation_id = {op:String}", scope
    )
    assert raw[0][0] > 30
    assert store.connection.query(
        "SELECT count(), countIf(status = 'Failed') FROM v1_items WHERE operation_id = {op:String}",
        scope,
    ) == [(30, 1)]
    assert store.connection.query(
        "SELECT count(), any(state) FROM v1_codes WHERE operation_id = {op:String}", scope
    ) == [(29, "expired")]  # NOW + 30 days is long past
    assert store.connection.query(
        "SELECT status, duration_ms, campaign_id, retry_of FROM v1_operations "
        "WHERE operation_id = {op:String}",
        scope,
    ) == [("Completed", 3000, None, None)]


def test_statistics_are_exact_after_rewrites_and_follow_each_sponsor(
    store: AnalyticsStore,
) -> None:
    now = datetime.now(UTC)
    for i, sponsor in enumerate((7, 7, 8)):
        op = op_id()
        for status, version in ((OperationStatus.PROCESSING, 1), (OperationStatus.COMPLETED, 4)):
            store.writer.upsert_operation(
                snapshot(op, sponsor, status, version, now - timedelta(hours=i)), channel="SMS"
            )
        store.writer.upsert_operation(  # the same final row again, as a replay writes it
            snapshot(op, sponsor, OperationStatus.COMPLETED, 4, now - timedelta(hours=i)),
            channel="SMS",
            total_cost=0.5,
        )
    store.reader.refresh_statistics()
    stats = store.reader.statistics(7, since=now - timedelta(days=30), tz="Europe/Istanbul")
    assert stats["totals"][:7] == (2, 2, 0, 0, 0, 20, 20)
    assert stats["totals"][7] == 3000  # milliseconds from start to completion, on average
    assert stats["channels"] == [("SMS", 20, 20, 1.0)]
    assert sum(hour[1] for hour in stats["hours"]) == 2
    assert stats["as_of"] is not None and stats["as_of"].tzinfo is not None
    everyone = store.reader.statistics(None, since=now - timedelta(days=30), tz="UTC")
    assert everyone["totals"][0] == 3
