"""The write-behind buffer: rows of many operations in one insert per table, events
acknowledged only once what was buffered before them is stored, and handlers that write
their rows again when a crash lost them and Kafka replays the event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from analytics.rows import TableRows
from schemas.common import OperationStatus
from schemas.messages import BatchSunk, ItemBatch, ResultBatch
from streams.agents import acked_when_stored, count, process, sink
from streams.testing import FakeWorker, event, fake_worker
from streams.writebehind import WriteBehind
from tests.unit.test_agents import CODEGEN, codes_request, handle_operations


class RecordingStore:
    def __init__(self) -> None:
        self.calls: list[list[tuple[str, int]]] = []
        self.stored: asyncio.Queue[list[tuple[str, int]]] = asyncio.Queue()

    async def __call__(self, tables: Sequence[TableRows]) -> None:
        call = [(t.table, len(t)) for t in tables]
        self.calls.append(call)
        self.stored.put_nowait(call)

    async def next(self) -> list[tuple[str, int]]:
        """The next insert (within 5 s)."""
        return await asyncio.wait_for(self.stored.get(), 5)


def rows(table: str, n: int = 1) -> TableRows:
    return TableRows(table, ("a",), [[i] for i in range(n)])


async def test_rows_wait_for_the_flush_and_acks_wait_for_the_rows() -> None:
    store = RecordingStore()
    behind = WriteBehind(store, interval=60, max_rows=100)
    acked: list[str] = []

    async def ack(name: str) -> None:
        acked.append(name)

    await behind.release(lambda: ack("before any row"))
    assert acked == ["before any row"], "nothing buffered: acknowledged at once"
    await behind.later(rows("operations"))
    await behind.later(rows("operation_requests"))
    await behind.later(rows("operations", 2))
    await behind.release(lambda: ack("after three rows"))
    assert store.calls == [] and acked == ["before any row"] and behind.waiting == 4

    assert await behind.flush() == 4
    assert store.calls == [[("operations", 1), ("operation_requests", 1), ("operations", 2)]]
    assert acked == ["before any row", "after three rows"]
    assert behind.waiting == 0 and await behind.flush() == 0 and len(store.calls) == 1


async def test_the_flusher_writes_every_interval_sooner_when_full_and_once_more_when_stopped() -> (
    None
):
    store = RecordingStore()
    behind = WriteBehind(store, interval=0.05, max_rows=10)
    flusher = asyncio.create_task(behind.run())
    await behind.later(rows("operations"))
    assert await store.next() == [("operations", 1)], "written within the interval"

    behind.interval = 60
    await behind.later(rows("operations", 3))
    await asyncio.sleep(0)  # the flusher is waiting out its interval
    await behind.later(rows("operations", 7))  # 10 rows: full
    assert await store.next() == [("operations", 3), ("operations", 7)]

    await behind.later(rows("operation_snapshots"))
    flusher.cancel()
    async with asyncio.timeout(5):
        await asyncio.gather(flusher, return_exceptions=True)
    assert await store.next() == [("operation_snapshots", 1)], "stored before stopping"


async def test_what_waits_for_a_flush_runs_after_the_rows_are_stored_even_if_one_fails() -> None:
    store = RecordingStore()
    behind = WriteBehind(store, interval=60, max_rows=100)
    seen: list[int] = []

    async def broken() -> None:
        raise RuntimeError("a send failed")

    async def then() -> None:
        seen.append(len(store.calls))

    await behind.later(rows("operation_snapshots"), then=broken)
    await behind.later(rows("operation_snapshots"), then=then)
    await behind.flush()
    assert seen == [1]


class FakeStream:
    """What ``acked_when_stored`` uses of a Faust stream: ``noack().events()`` and ``ack``."""

    def __init__(self, values: list[bytes]) -> None:
        self.values = values
        self.acked: list[bytes] = []

    def noack(self) -> FakeStream:
        return self

    async def events(self) -> Any:
        for value in self.values:
            yield SimpleNamespace(value=value)

    async def ack(self, event: Any) -> bool:
        self.acked.append(event.value)
        return True


async def test_an_event_is_acknowledged_only_once_its_rows_are_stored() -> None:
    store = RecordingStore()
    behind = WriteBehind(store, interval=60, max_rows=100)
    stream = FakeStream([b"writes a row", b"writes nothing"])
    handled = []
    async for ev in acked_when_stored(stream, behind):  # type: ignore[arg-type]
        handled.append(ev.value)
        if ev.value == b"writes a row":
            await behind.later(rows("operations"))
    assert handled == [b"writes a row", b"writes nothing"]
    assert stream.acked == [], "both wait: rows were buffered before each was done"
    await behind.flush()
    assert stream.acked == [b"writes a row", b"writes nothing"]


async def test_an_event_whose_handling_was_cancelled_is_not_acknowledged() -> None:
    """A stop past its grace cancels the handler: the event must run again after a restart."""
    behind = WriteBehind(RecordingStore(), interval=60, max_rows=100)
    stream = FakeStream([b"finished", b"cut short"])
    events = acked_when_stored(stream, behind)  # type: ignore[arg-type]
    waiting = asyncio.Event()

    async def agent() -> None:
        async for ev in events:
            if ev.value == b"cut short":
                waiting.set()
                await asyncio.Event().wait()  # a job batch waiting for another system

    task = asyncio.create_task(agent())
    await asyncio.wait_for(waiting.wait(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await events.aclose()
    await behind.flush()
    assert stream.acked == [b"finished"]


def lose_the_buffer(worker: FakeWorker) -> None:
    """A crash before the flush: the rows were never stored (the tables survived)."""
    worker.ctx.behind = WriteBehind(worker.ctx.behind._store, interval=60, max_rows=5000)


async def test_a_replayed_request_writes_the_rows_a_crash_lost() -> None:
    worker = fake_worker(write_behind_seconds=5)
    await handle_operations(worker, codes_request(total=100, batch_size=50))
    assert worker.ctx.behind.waiting == 2
    lose_the_buffer(worker)
    await handle_operations(worker, codes_request(total=100, batch_size=50))  # the replay
    await worker.ctx.behind.flush()
    assert len(worker.store.tables.rows("operation_requests")) == 1
    [row] = worker.store.tables.rows("operations")
    assert row["status"] == OperationStatus.PROCESSING.value


async def test_a_replayed_last_batch_writes_the_final_row_a_crash_lost() -> None:
    worker = fake_worker(write_behind_seconds=5)
    await handle_operations(worker, codes_request(total=100, batch_size=50))
    await worker.ctx.behind.flush()
    for batch in worker.out["items"].messages(ItemBatch):
        await process.handle(worker.ctx, event(batch, topic="unit.items"))
    results = [event(r, topic="unit.results") for r in worker.out["results"].messages(ResultBatch)]
    await sink.store(worker.ctx, results)
    sunk = worker.out["progress"].messages(BatchSunk)
    for message in sunk:
        await count.handle(worker.ctx, event(message, topic="unit.progress"))
    last = sunk[-1]
    lose_the_buffer(worker)
    [row] = worker.store.tables.rows("operations")
    assert row["status"] == OperationStatus.PROCESSING.value, "the final row was lost"

    await count.handle(worker.ctx, event(last, topic="unit.progress"))  # the replay
    await worker.ctx.behind.flush()
    [row] = worker.store.tables.rows("operations")
    assert row["status"] == OperationStatus.COMPLETED.value
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.processed_items == 100, "counted once"
