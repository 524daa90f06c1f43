"""The operations table wrapper: what it keeps beside the store, and that it never serves a
stale or shared state."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.common import OperationStatus
from streams.progress import OperationState
from streams.tables import Operations, Remembered, Tables
from tests.unit.test_agents import codes_request

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class CountingStore(MutableMapping[str, Any]):
    """A dict that counts reads, standing for the RocksDB-backed Faust table."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.reads = 0

    def __getitem__(self, key: str) -> Any:
        self.reads += 1
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def state(n: int, status: OperationStatus = OperationStatus.PROCESSING) -> OperationState:
    return OperationState(
        operation_id=f"bulk_{n:032d}",
        sponsor_id=100 + n,
        operation_type="BulkCodeGeneration",
        operation_name=f"op {n}",
        requested_by="u",
        status=status,
        total_items=10,
        batches_total=1,
        created_at=START,
        started_at=START,
        last_updated=START,
        completed_at=START + timedelta(minutes=n) if status.is_terminal else None,
        current_phase="Processing",
        status_message="",
    )


def test_watched_states_are_read_without_going_to_the_store() -> None:
    store = CountingStore()
    operations = Operations(store)
    assert operations.watched() == []
    operations.save(state(1))
    store.reads = 0
    for _ in range(5):
        loaded = operations.load("bulk_" + "1".zfill(32))
        assert loaded is not None and loaded.operation_name == "op 1"
        assert operations.view(loaded.operation_id) is not None
    assert store.reads == 0


def test_a_view_is_parsed_once_per_save_and_follows_every_save() -> None:
    operations = Operations(CountingStore())
    operations.watched()
    saved = state(1)
    operations.save(saved)
    first = operations.view(saved.operation_id)
    assert first is operations.view(saved.operation_id), "parsed once"
    saved.processed_items = 7
    operations.save(saved)
    second = operations.view(saved.operation_id)
    assert second is not None and second.processed_items == 7
    assert first is not None and first.processed_items == 0, "an older view is left alone"


def test_a_loaded_state_changed_but_not_saved_changes_nothing_kept() -> None:
    operations = Operations(CountingStore())
    operations.watched()
    operations.save(state(1))
    op_id = state(1).operation_id
    loaded = operations.load(op_id)
    assert loaded is not None
    loaded.processed_items = 9
    loaded.alerts.append("stalled")
    again, view = operations.load(op_id), operations.view(op_id)
    assert again is not None and view is not None
    assert (again.processed_items, again.alerts) == (0, [])
    assert (view.processed_items, view.alerts) == (0, [])


def test_the_finished_index_follows_saves_drops_and_rescans() -> None:
    store = CountingStore()
    operations = Operations(store)
    operations.watched()
    for n in (1, 2, 3):
        operations.save(state(n, OperationStatus.COMPLETED))
    operations.save(state(4))
    cutoff = START + timedelta(minutes=2, seconds=30)
    assert sorted(operations.finished_before(cutoff)) == [
        (state(1).operation_id, 101),
        (state(2).operation_id, 102),
    ]
    retried = state(1)  # judged afresh: running again, no longer finished
    operations.save(retried)
    operations.drop(state(2).operation_id)
    assert operations.finished_before(cutoff) == []
    assert operations.finished_before(START + timedelta(hours=1)) == [(state(3).operation_id, 103)]

    operations.rescan()
    assert operations.finished_before(START + timedelta(hours=1)) == [(state(3).operation_id, 103)]
    assert sorted(operations.watched()) == sorted([state(1).operation_id, state(4).operation_id])


def test_a_pending_webhook_keeps_a_finished_operation_watched_and_not_evictable() -> None:
    operations = Operations(CountingStore())
    operations.watched()
    ended = state(1, OperationStatus.COMPLETED)
    ended.webhook_state = "pending"
    operations.save(ended)
    assert operations.watched() == [ended.operation_id]
    assert operations.finished_before(START + timedelta(days=1)) == []
    assert not operations.finished_by(ended.operation_id, START + timedelta(days=1))
    ended.webhook_state = "delivered"
    operations.save(ended)
    assert operations.finished_before(START + timedelta(days=1)) == [(ended.operation_id, 101)]
    assert operations.finished_by(ended.operation_id, START + timedelta(days=1))


def test_a_remembered_table_reads_each_key_once_until_it_forgets() -> None:
    store = CountingStore()
    store.data["7"] = {"next": 10, "recent": {}}
    table = Remembered(store)
    assert table.get("7") == {"next": 10, "recent": {}}
    assert table["7"] == {"next": 10, "recent": {}}
    assert table.get("8") is None and "8" not in table
    reads = store.reads
    table["7"] = {"next": 20, "recent": {}}
    assert store.data["7"] == {"next": 20, "recent": {}}, "written through"
    assert table.get("7") == {"next": 20, "recent": {}}
    assert store.reads == reads, "served from memory"

    store.data["7"] = {"next": 30, "recent": {}}  # e.g. restored from the changelog
    table.forget()
    assert table.get("7") == {"next": 30, "recent": {}}
    del table["7"]
    assert table.get("7") is None and "7" not in store.data


def test_serials_and_quota_records_survive_a_rebalance_of_the_tables() -> None:
    tables = Tables.over({}, {}, {}, {})
    request_ids = iter(range(1000))

    def reserve(sponsor: int, count: int) -> int:
        request = codes_request(
            total=count,
            batch_size=10,
            operationId=f"bulk_{next(request_ids):032d}",
            sponsorId=sponsor,
        )
        return tables.serials.reserve(request)

    assert reserve(1, 100) == 0
    assert reserve(1, 50) == 100
    tables.rebalanced()
    assert reserve(1, 5) == 150
    assert reserve(2, 5) == 0

    record = tables.quotas.load("1")
    record.active["bulk_x"] = 10
    assert tables.quotas.load("1").active == {}, "a loaded record is the caller's own"
    tables.quotas.save("1", record)
    tables.rebalanced()
    assert tables.quotas.load("1").active == {"bulk_x": 10}
