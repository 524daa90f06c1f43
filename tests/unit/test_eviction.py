"""Finished operations leave the worker's tables after the retention, archived first; early
controls whose request never came expire; the API's view forgets tombstoned operations and
answers from the archive."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from api.status_view import StatusView
from schemas.common import OperationStatus
from schemas.messages import ControlAction, ControlCommand, OperationEvict, OperationsMessage
from schemas.status import OperationSnapshot
from streams import timers
from streams.agents import control, evict, guarded
from streams.testing import FakeWorker, event, fake_worker
from tests.unit.test_agents import (
    CODEGEN,
    NOW,
    codes_request,
    handle_operations,
    run_batches_through,
)

RETENTION = 600.0


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The eviction's clock, ``seconds`` from now."""
    moment = datetime.now(NOW.tzinfo) + timedelta(seconds=seconds)
    monkeypatch.setattr(evict, "now", lambda: moment)


async def completed(worker: FakeWorker) -> OperationSnapshot:
    await handle_operations(worker, codes_request(total=100, batch_size=50))
    await run_batches_through(worker)
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.status is OperationStatus.COMPLETED
    return state.snapshot()


def evictions(worker: FakeWorker) -> list[OperationEvict]:
    sent = worker.out["operations"].messages(OperationsMessage)
    return [m for m in sent if isinstance(m, OperationEvict)]


async def deliver_evictions(worker: FakeWorker) -> None:
    """Handle the asks, then the confirmations they send once archived, until none is left."""
    while pending := evictions(worker):
        worker.out["operations"].clear()
        for message in pending:
            await handle_operations(worker, message)


async def test_a_finished_operation_is_archived_then_leaves_after_the_retention(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = fake_worker(finished_retention_seconds=RETENTION)
    final = await completed(worker)
    worker.out["status"].clear()

    assert await evict.ask_for_evictions(worker.ctx) == 0, "kept during the retention"
    later(monkeypatch, RETENTION + 1)
    assert await evict.ask_for_evictions(worker.ctx) == 1
    assert [(e.operation_id, e.sponsor_id) for e in evictions(worker)] == [(CODEGEN, 7)]
    await deliver_evictions(worker)

    assert worker.ctx.tables.operations.load(CODEGEN) is None
    archived = worker.store.tables.rows("operation_snapshots")
    assert [OperationSnapshot.model_validate_json(r["snapshot_json"]) for r in archived] == [final]
    assert worker.out["status"].tombstones() == [CODEGEN.encode()]
    assert await evict.ask_for_evictions(worker.ctx) == 0


async def test_a_replayed_eviction_and_one_for_a_running_operation_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = fake_worker(finished_retention_seconds=RETENTION)
    await handle_operations(worker, codes_request(total=100, batch_size=50))
    later(monkeypatch, RETENTION + 1)
    running = OperationEvict(operation_id=CODEGEN, sponsor_id=7)
    await handle_operations(worker, running)
    assert worker.ctx.tables.operations.load(CODEGEN) is not None, "running: kept"
    assert worker.store.tables.rows("operation_snapshots") == []

    await run_batches_through(worker)
    worker.out["operations"].clear()
    await handle_operations(worker, running)
    await handle_operations(worker, running)  # replayed
    confirmations = evictions(worker)
    assert [e.archived_version for e in confirmations] == [confirmations[0].archived_version] * 2
    await deliver_evictions(worker)
    assert len(worker.store.tables.rows("operation_snapshots")) == 1, "replays collapse"
    assert worker.out["status"].tombstones() == [CODEGEN.encode()]
    assert worker.ctx.tables.operations.load(CODEGEN) is None


async def test_an_operation_with_its_completion_webhook_pending_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = fake_worker(finished_retention_seconds=RETENTION)
    await completed(worker)
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None
    state.webhook_state = "pending"
    worker.ctx.tables.operations.save(state)
    later(monkeypatch, RETENTION + 1)
    assert await evict.ask_for_evictions(worker.ctx) == 0


async def test_an_operation_that_changed_while_it_was_archived_stays_for_the_next_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = fake_worker(finished_retention_seconds=RETENTION)
    await completed(worker)
    worker.out["operations"].clear()
    later(monkeypatch, RETENTION + 1)
    await handle_operations(worker, OperationEvict(operation_id=CODEGEN, sponsor_id=7))
    [archived] = evictions(worker)
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and archived.archived_version == state.version
    state.version += 1  # e.g. a webhook attempt counted between the ask and the confirmation
    worker.ctx.tables.operations.save(state)
    await handle_operations(worker, archived)
    assert worker.ctx.tables.operations.load(CODEGEN) is not None
    assert worker.out["status"].tombstones() == []


async def test_an_early_control_whose_request_never_came_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = fake_worker(early_control_retention_seconds=RETENTION)
    pause = ControlCommand(
        operation_id=CODEGEN, sponsor_id=7, action=ControlAction.PAUSE, requested_by="u",
        requested_at=NOW,
    )  # fmt: skip
    await guarded(worker.ctx, event(pause, topic="unit.control"), control.handle)
    assert await evict.ask_for_evictions(worker.ctx) == 0
    later(monkeypatch, RETENTION + 1)
    assert await evict.ask_for_evictions(worker.ctx) == 1
    await deliver_evictions(worker)
    assert worker.ctx.tables.early_controls.get(CODEGEN) is None
    assert worker.out["status"].tombstones() == [], "no operation, nothing to unpublish"


def test_an_early_control_kept_by_an_older_version_still_reads() -> None:
    worker = fake_worker()
    worker.tables["early_controls"][CODEGEN] = "cancel"
    assert worker.ctx.tables.early_controls.get(CODEGEN) is ControlAction.CANCEL


def snapshot_of(
    version: int, status: str = "Completed", operation_id: str = CODEGEN
) -> OperationSnapshot:
    values: dict[str, Any] = {
        "operationId": operation_id,
        "sponsorId": 7,
        "operationType": "BulkCodeGeneration",
        "operationName": "n",
        "requestedBy": "u",
        "status": status,
        "totalItems": 10,
        "createdAt": NOW,
        "lastUpdated": NOW,
        "currentPhase": "done",
        "statusMessage": "done",
        "version": version,
    }
    return OperationSnapshot.model_validate(values)


def test_the_status_view_forgets_a_tombstoned_operation_and_reads_its_archive() -> None:
    archived = snapshot_of(5)
    reads: list[list[str]] = []

    def archive(operation_ids: Sequence[str]) -> dict[str, OperationSnapshot]:
        reads.append(list(operation_ids))
        return {CODEGEN: archived} if CODEGEN in operation_ids else {}

    view = StatusView(archive=archive, archive_cache_size=1)
    view.apply(snapshot_of(5))
    assert view.lookup(CODEGEN) == archived and reads == [], "live: no read"
    view.forget(CODEGEN.encode())
    assert view.get(CODEGEN) is None and len(view) == 0
    assert view.known(CODEGEN) is None, "known() never reads"
    assert view.lookup(CODEGEN) == archived
    assert view.known(CODEGEN) == archived
    assert view.lookup(CODEGEN) == archived
    assert reads == [[CODEGEN]], "archived snapshots never change: read once"
    other = "codegen_" + "f" * 32
    assert view.lookup(other) is None and view.lookup(other) is None
    assert reads == [[CODEGEN], [other], [other]], "an unknown id is not cached"


async def test_find_reads_the_archive_off_the_loop_only_on_a_miss() -> None:
    archived = snapshot_of(3)
    view = StatusView(archive=lambda ids: {i: archived for i in ids})
    assert await view.find(CODEGEN) == archived
    live = snapshot_of(4, status="Processing")
    view.apply(live)
    assert await view.find(CODEGEN) == live, "the live snapshot wins"


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_concurrent_archive_misses_share_one_read() -> None:
    """Ids asked for while a read runs wait for the next one, together; a cancelled caller
    does not cancel the answer for the others."""
    ids = [f"codegen_{i:032x}" for i in range(60)]
    reads: list[list[str]] = []
    release = threading.Event()

    def archive(operation_ids: Sequence[str]) -> dict[str, OperationSnapshot]:
        reads.append(list(operation_ids))
        release.wait(5)
        return {i: snapshot_of(2).model_copy(update={"operation_id": i}) for i in operation_ids}

    view = StatusView(archive=archive)
    first = asyncio.create_task(view.find(ids[0]))
    await until(lambda: len(reads) == 1)
    rest = [asyncio.create_task(view.find(i)) for i in ids[1:] + ids[1:]]
    given_up = asyncio.create_task(view.find(ids[1]))
    await asyncio.sleep(0)
    given_up.cancel()
    release.set()
    found = await asyncio.gather(first, *rest)
    assert [s.operation_id for s in found] == ids + ids[1:]
    assert reads == [ids[:1], ids[1:]], "one read for the first, one for all that waited"
    assert view.known(ids[30]) is not None, "kept for the next poll"


async def test_a_failed_archive_read_fails_its_waiters_and_the_next_read_retries() -> None:
    calls = 0

    def archive(operation_ids: Sequence[str]) -> dict[str, OperationSnapshot]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("ClickHouse is away")
        return {CODEGEN: snapshot_of(2)}

    view = StatusView(archive=archive)
    with pytest.raises(ConnectionError):
        await view.find(CODEGEN)
    assert await view.find(CODEGEN) == snapshot_of(2)


async def test_the_timers_watch_only_unfinished_operations_and_pending_webhooks() -> None:
    worker = fake_worker()
    operations = worker.ctx.tables.operations
    assert operations.watched() == []
    await handle_operations(worker, codes_request(total=100, batch_size=50))
    assert operations.watched() == [CODEGEN]
    await run_batches_through(worker)
    assert operations.watched() == [], "finished: no longer watched"
    state = operations.load(CODEGEN)
    assert state is not None
    state.webhook_state = "pending"
    operations.save(state)
    assert operations.watched() == [CODEGEN], "its completion webhook still to deliver"

    operations.rescan()  # e.g. after a rebalance: rebuilt by one scan of the table
    assert operations.watched() == [CODEGEN]
    worker.tables["operations"].clear()
    operations.rescan()
    assert operations.watched() == []


async def test_the_release_timer_looks_only_at_operations_holding_batches() -> None:
    worker = fake_worker()
    operations = worker.ctx.tables.operations
    await handle_operations(worker, codes_request(total=100, batch_size=50))
    assert operations.holding() == []
    state = operations.load(CODEGEN)
    assert state is not None
    state.held_count = 1  # e.g. paused with a batch bounced back
    operations.save(state)
    assert operations.holding() == [CODEGEN]
    operations.rescan()
    assert operations.holding() == [CODEGEN], "rebuilt by the scan"
    state.held_count = 0
    operations.save(state)
    assert operations.holding() == []


async def test_unchanged_running_operations_are_republished_only_every_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = fake_worker(status_refresh_seconds=30)
    await handle_operations(worker, codes_request(total=100, batch_size=50))
    status = worker.out["status"]
    status.clear()
    await timers.publish_running(worker.ctx)
    assert status.sent == [], "published when registered: not stale yet"

    worker.ctx.registry.dirty.add(CODEGEN)
    await timers.publish_running(worker.ctx)
    assert len(status.sent) == 1, "changed: published at the next tick"
    await timers.publish_running(worker.ctx)
    assert len(status.sent) == 1

    clock = asyncio.get_running_loop().time() + 31
    monkeypatch.setattr(asyncio.get_running_loop(), "time", lambda: clock)
    await timers.publish_running(worker.ctx)
    assert len(status.sent) == 2, "unchanged for the refresh interval: refreshed"
