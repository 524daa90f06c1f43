"""Turns between operations on one partition: each holds at most its release window of
batches in the items topic, so operations sharing a partition are served round by round;
windows are weighted by priority, refill as batches are counted, starve no one, and a
replayed release asks for nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.common import OperationStatus
from schemas.messages import ItemBatch, OperationRequested, ReleaseTick
from streams.testing import FakeWorker, fake_worker
from tests.unit.test_agents import handle_operations, run_batches_through

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def codes(name: str, total: int, *, priority: int = 5, sponsor: int = 7) -> OperationRequested:
    return OperationRequested.model_validate(
        {
            "operationId": f"codegen_{name * 32}",
            "operationType": "BulkCodeGeneration",
            "sponsorId": sponsor,
            "requestedBy": "u",
            "requestedAt": NOW,
            "totalItems": total,
            "priority": priority,
            "codeGeneration": {
                "subscriptionTierId": 2,
                "quantity": total,
                "processing": {"batchSize": 100},
            },
            "submissionId": f"first-{name}",
        }
    )


def released(worker: FakeWorker) -> list[tuple[str, int]]:
    """(operation id, batch index) of what is in the items topic now, in order."""
    return [(b.operation_id, b.batch_index) for b in worker.out["items"].messages(ItemBatch)]


async def one_round(worker: FakeWorker) -> list[tuple[str, int]]:
    """Process what is released, count it, then answer the release ticks that asked for
    more: what the next round has in the items topic."""
    await run_batches_through(worker)
    ticks = worker.out["operations"].messages(ReleaseTick)
    worker.out["operations"].clear()
    for tick in ticks:
        await handle_operations(worker, tick)
    return released(worker)


def status(worker: FakeWorker, request: OperationRequested) -> OperationStatus:
    state = worker.ctx.tables.operations.load(request.operation_id)
    assert state is not None
    return state.status


async def test_operations_on_one_partition_take_turns_and_none_is_starved() -> None:
    worker = fake_worker(release_window_items=500)  # 5 batches of 100 at priority 5
    first, second = codes("a", 3000), codes("b", 3000, sponsor=8)
    await handle_operations(worker, first)
    await handle_operations(worker, second)
    a, b = first.operation_id, second.operation_id
    assert released(worker) == [(a, i) for i in range(5)] + [(b, i) for i in range(5)]

    rounds = 0
    while status(worker, first) is OperationStatus.PROCESSING:
        now_out = await one_round(worker)
        rounds += 1
        ids = [op for op, _ in now_out]
        if now_out:
            assert ids.count(a) == ids.count(b) == 5, "each gets its window in every round"
    assert rounds == 6
    for request in (first, second):
        assert status(worker, request) is OperationStatus.COMPLETED
        assert (
            worker.store.reader.code_counts(request.sponsor_id, request.operation_id).unique_codes
            == 3000
        )


async def test_a_small_operation_goes_ahead_of_a_big_ones_backlog() -> None:
    worker = fake_worker(release_window_items=500)
    big, small = codes("c", 100_000), codes("d", 200)
    await handle_operations(worker, big)
    await handle_operations(worker, small)
    ahead = released(worker)
    assert ahead[-2:] == [(small.operation_id, 0), (small.operation_id, 1)]
    assert len(ahead) == 7, "behind 5 batches of the big one, not behind its 1,000"

    await one_round(worker)
    assert status(worker, small) is OperationStatus.COMPLETED
    assert status(worker, big) is OperationStatus.PROCESSING


async def test_windows_are_weighted_by_priority() -> None:
    worker = fake_worker(release_window_items=1000)  # 10 batches of 100 at priority 5
    low, normal, high = (
        codes("e", 5000, priority=1),
        codes("f", 5000),
        codes("1", 5000, priority=10),
    )
    for request in (low, normal, high):
        await handle_operations(worker, request)
    windows = {}
    for request in (low, normal, high):
        state = worker.ctx.tables.operations.load(request.operation_id)
        assert state is not None
        windows[request.priority] = state.release_window
    assert windows == {1: 2, 5: 10, 10: 20}

    ids = [op for op, _ in released(worker)]
    assert [ids.count(r.operation_id) for r in (low, normal, high)] == [2, 10, 20]
    finished: list[int] = []
    while status(worker, low) is OperationStatus.PROCESSING:
        await one_round(worker)
        for request in (high, normal):
            if (
                status(worker, request) is OperationStatus.COMPLETED
                and request.priority not in finished
            ):
                finished.append(request.priority)
    assert finished == [10, 5], "the higher priority finishes first; the lowest still finishes"


async def test_a_replayed_release_tick_releases_nothing_more() -> None:
    worker = fake_worker(release_window_items=500)
    request = codes("2", 2000)
    await handle_operations(worker, request)
    await run_batches_through(worker)
    ticks = worker.out["operations"].messages(ReleaseTick)
    assert len(ticks) == 1
    worker.out["operations"].clear()
    await handle_operations(worker, ticks[0])
    assert [i for _, i in released(worker)] == [5, 6, 7, 8, 9]
    worker.out["items"].clear()

    await handle_operations(worker, ticks[0])  # the same tick again (a replay)
    await handle_operations(worker, request)  # and the request (a replay after a crash)
    again = [i for _, i in released(worker)]
    assert set(again) <= {5, 6, 7, 8, 9}, "only what was released already goes again"
    state = worker.ctx.tables.operations.load(request.operation_id)
    assert state is not None
    assert int.from_bytes(state.released, "little").bit_count() == 10
