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

from analytics import rows, sql
from analytics.connection import Connection
from analytics.erasure import erase
from analytics.idempotency import COLUMNS as IDEMPOTENCY_COLUMNS
from analytics.retention import Retention
from analytics.retention import apply as apply_retention
from analytics.store import AnalyticsStore
from schemas.common import (
    Channel,
    ErrorCategory,
    ItemError,
    ItemStatus,
    OperationStatus,
    OperationType,
)
from schemas.link_wire import PreparedRecipient
from schemas.messages import ItemBatch, OperationRequested, RecipientChunk, ResultBatch
from schemas.status import OperationSnapshot
from tests.support import run_script

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


def test_results_sent_as_arrow_read_back_value_for_value(store: AnalyticsStore) -> None:
    """Item and code rows go to ClickHouse as Arrow: nulls, booleans, the largest sponsor id,
    low-cardinality strings and millisecond timestamps come back as they were built."""
    sponsor = 2**63 - 1
    moment = datetime(2026, 11, 29, 0, 30, 15, 123000, tzinfo=UTC)
    operation = f"linksend_{uuid.uuid4().hex}"
    batch = ResultBatch(
        operation_id=operation,
        sponsor_id=sponsor,
        operation_type=OperationType.LINK_SEND,
        batch_index=0,
        start_index=0,
        statuses=[ItemStatus.SUCCESS, ItemStatus.FAILED, ItemStatus.SKIPPED],
        results=["SM1", None, None],
        errors=[
            ItemError(
                item_index=1,
                item_id=f"{operation}:1",
                error_code="INVALID_PHONE",
                error_message="not a number",
                error_category=ErrorCategory.VALIDATION,
                is_retryable=True,
                retry_count=2,
            )
        ],
        processed_at=moment,
        duration_ms=9.0,
        channel=Channel.SMS,
        unit_cost=0.25,
        attempts=[1, 3, 0],
        latencies_ms=[1.5, 2.5, 0.0],
    )
    assert store.writer.insert_results([batch]) == 3
    page = store.reader.items_page(sponsor, operation, after_index=0, limit=10)
    shared = (moment, 3.0, "SMS")  # processed_at, per-item duration, channel
    assert page == [
        (0, f"{operation}:0", "Success", "SM1", None, None, None, False, 0, *shared, 0.25, 1),
        (1, f"{operation}:1", "Failed", None, "INVALID_PHONE", "not a number", "Validation",
         True, 2, *shared, 0.0, 3),
        (2, f"{operation}:2", "Skipped", None, None, None, None, False, 0, *shared, 0.0, 0),
    ]  # fmt: skip
    coded = op_id()
    assert sink(store, [result(coded, 0, 0, 3, sponsor=sponsor)]) == 3
    codes = store.reader.codes_page(sponsor, coded, after_index=0, limit=10)
    assert codes == [
        (i, f"P-{coded[-6:]}-{i:06d}", 2, "North", NOW + timedelta(days=30)) for i in range(3)
    ]


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


def test_history_filters_by_type_and_a_part_of_the_name_in_any_case(
    store: AnalyticsStore,
) -> None:
    ops = [op_id() for _ in range(3)]
    names = ["Antalya Bayileri", "İzmir kampanyası", "antalya yaz"]
    for i, (op, name) in enumerate(zip(ops, names, strict=True)):
        state = snapshot(op, 7, OperationStatus.COMPLETED, 2, NOW + timedelta(minutes=i))
        state.operation_name = name
        if i == 1:
            state.operation_type = OperationType.LINK_SEND
        store.writer.upsert_operation(state)

    def found(**filters: str) -> list[str]:
        return [r.operation_id for r in store.reader.history(7, limit=10, offset=0, **filters)]

    assert found(search="ANTALYA") == [ops[2], ops[0]]
    assert store.reader.history_count(7, search="antalya") == 2
    assert found(search="kampanya") == [ops[1]]
    assert found(operation_type="BulkLinkSend") == [ops[1]]
    assert found(operation_type="BulkCodeGeneration", search="yaz") == [ops[2]]
    assert found(search="x' OR 1=1 --") == []
    assert store.reader.history(8, limit=10, offset=0, search="antalya") == []


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


def test_every_table_with_data_has_a_ttl_from_the_settings(chdb_dir: Path) -> None:
    opened = AnalyticsStore.open(
        dsn=None,
        chdb_path=chdb_dir,
        database=f"t_{uuid.uuid4().hex[:12]}",
        retention=Retention(results_days=500, personal_days=9),
    )
    try:
        tables = dict(
            opened.connection.query(
                # '.inner_id…' and, mid-refresh, '.tmp.inner_id…': the rollups' own tables
                "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
                "AND engine LIKE '%MergeTree' AND NOT startsWith(name, '.')",
                {},
            )
        )
        kept = {
            name: opened.connection.query(sql.load("retention.sql")["ttl_days"], {"table": name})
            for name in tables
        }
        expected = {
            "operations": 500,
            "operation_requests": 500,
            "operation_snapshots": 500,
            "items": 500,
            "codes": 500,
            "code_reservations": 500,  # + the longest validity of a code
            "recipients": 9,
            "dealer_invitations": 9,
            "item_batches": 60,  # held batches resume from here: at least 60 days
        }
        assert {name: kept[name][0][0] for name in expected} == expected
        assert "toIntervalDay(1)" in tables["idempotency_keys"]
        # Not here: a sponsor's saved templates (configuration), and the rollups (views).
        assert set(tables) - set(expected) == {"idempotency_keys", "templates"}
        # The same settings again change nothing; other settings change the personal tables.
        assert apply_retention(opened.connection, Retention(500, 9)) == []
        assert apply_retention(opened.connection, Retention(500, 90)) == [
            "recipients",
            "dealer_invitations",
            "item_batches",
        ]
    finally:
        opened.drop_database()
        opened.close()


def test_erasure_removes_an_address_from_every_table(store: AnalyticsStore) -> None:
    phone, other = "+905321234567", "+905329876543"
    op = f"linksend_{uuid.uuid4().hex}"
    chunk = RecipientChunk(
        operation_id=op,
        sponsor_id=7,
        chunk_index=0,
        start_index=0,
        recipients=[
            PreparedRecipient(index=i, name=f"R{i}", address=address, message=f"Hi {address}")
            for i, address in enumerate((phone, other))
        ],
    )
    connection = store.connection
    connection.insert(*_table(rows.recipient_rows(chunk)))
    connection.insert(
        "item_batches",
        [[7, op, 0, chunk.model_dump_json(), datetime.now(UTC)]],
        ["sponsor_id", "operation_id", "batch_index", "batch_json", "stored_at"],
    )
    connection.insert(
        "dealer_invitations",
        [
            [
                7,
                op,
                0,
                2,
                "d@example.com",
                phone,
                "Dealer",
                "S",
                [],
                "t",
                "Invite",
                "Success",
                None,
                None,
                datetime.now(UTC),
            ]
        ],
        list(rows.DEALER_COLUMNS),
    )
    connection.insert(
        "idempotency_keys",
        [[7, "send-links", "k1", "h", 202, f'{{"warnings": ["{phone}"]}}', datetime.now(UTC)]],
        list(IDEMPOTENCY_COLUMNS),
    )

    removed = erase(connection, phone)
    assert removed == {
        "recipients": 1,
        "dealer_invitations": 1,
        "item_batches": 1,
        "operation_requests": 0,
        "idempotency_keys": 1,
        "operation_snapshots": 0,
    }
    assert _rows_holding(connection, phone) == {}
    assert _rows_holding(connection, other) == {"recipients": 1}  # its batch went whole
    assert erase(connection, phone) == dict.fromkeys(removed, 0)


def _table(table: rows.TableRows) -> tuple[str, list[list[object]], tuple[str, ...]]:
    return table.table, table.rows, table.columns


def _rows_holding(connection: Connection, value: str) -> dict[str, int]:
    """Every table with a text column holding ``value``, and how many rows (any column)."""
    columns = connection.query(
        "SELECT table, groupArray(name) FROM system.columns WHERE database = currentDatabase() "
        "AND type LIKE '%String%' AND table NOT LIKE 'v1_%' AND NOT startsWith(table, '.') "
        "GROUP BY table",
        {},
    )
    found = {}
    for table, names in columns:
        where = " OR ".join(f"position(toString(`{name}`), {{v:String}}) > 0" for name in names)
        count = connection.query(f"SELECT count() FROM `{table}` WHERE {where}", {"v": value})  # noqa: S608
        if count[0][0]:
            found[table] = int(count[0][0])
    return found


_FIRST_INSERT = """
import sys
from datetime import UTC, datetime
from pathlib import Path

from analytics.connection import Connection

connection = Connection.open(dsn=None, chdb_path=Path(sys.argv[1]), database="first")
before = set(sys.modules)
connection.insert(
    "operation_requests",
    [["op_1", 1, datetime.now(UTC), "{}"]],
    ["operation_id", "sponsor_id", "requested_at", "request_json"],
)
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_the_first_insert_after_a_connection_opens_imports_no_pandas(tmp_path: Path) -> None:
    """clickhouse-connect's first row insert imported pandas, holding the GIL for 0.3-0.6 s
    inside the worker's first operation after a start; the import now comes with the open.
    (A fresh interpreter: this one may have imported pandas long ago.)"""
    imported = run_script(_FIRST_INSERT, str(tmp_path / "chdb")).split()
    assert [name for name in imported if name.split(".")[0] == "pandas"] == []
