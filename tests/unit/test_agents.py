"""Every agent's handler on a fake context (no broker): replays skipped, paused batches held,
stopped operations skipped, malformed messages dead-lettered, progress counted once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.common import ItemStatus, OperationStatus, OperationType
from schemas.link_wire import LinkSendSpec, PreparedRecipient
from schemas.messages import (
    BatchHold,
    BatchSunk,
    ControlAction,
    ControlCommand,
    DeadLetter,
    ItemBatch,
    OperationAbort,
    OperationRequested,
    OperationsMessage,
    RecipientChunk,
    Redrive,
    ReleaseTick,
    ResultBatch,
)
from schemas.status import OperationSnapshot
from streams.agents import control, count, explode, guarded, process, sink
from streams.progress import is_batch_done
from streams.testing import FakeWorker, event, fake_worker

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
CODEGEN = "codegen_" + "a" * 32
LINKS = "bulk_" + "b" * 32


def codes_request(total: int = 1000, batch_size: int = 250, **fields: Any) -> OperationRequested:
    return OperationRequested.model_validate(
        {
            "operationId": CODEGEN,
            "operationType": "BulkCodeGeneration",
            "sponsorId": 7,
            "requestedBy": "u",
            "requestedAt": NOW,
            "totalItems": total,
            "codeGeneration": {
                "subscriptionTierId": 2,
                "quantity": total,
                "processing": {"batchSize": batch_size},
            },
            "submissionId": "first",
            **fields,
        }
    )


def link_header(total: int = 6, batch_size: int = 2, chunks: int = 2) -> OperationRequested:
    spec = LinkSendSpec(
        channel="SMS",
        subject="s",
        batch_size=batch_size,
        max_concurrency=4,
        retry_attempts=0,
        retry_delay_seconds=0,
        price_per_message=0.05,
        recipient_chunks=chunks,
    )
    return OperationRequested(
        operation_id=LINKS,
        operation_type=OperationType.LINK_SEND,
        sponsor_id=7,
        requested_by="u",
        requested_at=NOW,
        total_items=total,
        link_send=spec,
        submission_id="first",
    )


def chunk(index: int, start: int, count: int, submission: str = "first") -> RecipientChunk:
    return RecipientChunk(
        operation_id=LINKS,
        sponsor_id=7,
        chunk_index=index,
        start_index=start,
        recipients=[
            PreparedRecipient(index=i, name=f"n{i}", address=f"+9053200000{i:02d}", message="hi")
            for i in range(start, start + count)
        ],
        submission_id=submission,
    )


async def handle_operations(worker: FakeWorker, message: Any, offset: int = 0) -> None:
    await guarded(worker.ctx, event(message, offset=offset), explode.handle)


def items(worker: FakeWorker) -> list[ItemBatch]:
    return worker.out["items"].messages(ItemBatch)


async def run_batches_through(worker: FakeWorker) -> None:
    """items -> process -> results -> sink -> progress -> count, for what is queued now."""
    for batch in items(worker):
        await guarded(worker.ctx, event(batch, topic="unit.items"), process.handle)
    worker.out["items"].clear()
    results = [event(r, topic="unit.results") for r in worker.out["results"].messages(ResultBatch)]
    worker.out["results"].clear()
    await sink.store(worker.ctx, results)
    for sunk in worker.out["progress"].messages(BatchSunk):
        await guarded(worker.ctx, event(sunk, topic="unit.progress"), count.handle)
    worker.out["progress"].clear()


async def test_a_code_request_is_registered_once_and_exploded() -> None:
    worker = fake_worker()
    await handle_operations(worker, codes_request())
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.status is OperationStatus.PROCESSING
    assert (state.batches_total, state.partition, state.submission_id) == (4, 0, "first")
    assert [b.batch_index for b in items(worker)] == [0, 1, 2, 3]
    assert worker.store.state.request(7, CODEGEN) is not None
    assert worker.out["status"].messages(OperationSnapshot)[0].operation_id == CODEGEN

    worker.out["items"].clear()
    await handle_operations(worker, codes_request())  # a replay after a crash
    assert [b.batch_index for b in items(worker)] == [0, 1, 2, 3], "released, not counted: again"
    assert worker.ctx.tables.operations.load(CODEGEN) == state


async def test_a_big_operation_takes_turns_within_its_release_window() -> None:
    """At most a window of batches is released and not yet counted; the count agent asks
    for more once a quarter of the window is free, and the operation completes exactly."""
    worker = fake_worker(release_window_items=500)
    await handle_operations(worker, codes_request(total=1000, batch_size=50))
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.release_window == 10
    assert [b.batch_index for b in items(worker)] == list(range(10))
    assert state.held_count == 10

    await run_batches_through(worker)
    ticks = worker.out["operations"].messages(ReleaseTick)
    assert len(ticks) == 1, "one tick outstanding at a time"
    worker.out["operations"].clear()
    await handle_operations(worker, ticks[0])
    assert [b.batch_index for b in items(worker)] == list(range(10, 20))

    await run_batches_through(worker)
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.status is OperationStatus.COMPLETED
    assert state.successful_items == 1000 and state.held_count == 0
    assert worker.store.reader.code_counts(7, CODEGEN).unique_codes == 1000
    assert worker.out["operations"].messages(ReleaseTick) == []


async def test_a_second_submission_of_an_operation_is_ignored() -> None:
    worker = fake_worker()
    await handle_operations(worker, codes_request())
    worker.out["items"].clear()
    await handle_operations(worker, codes_request(submissionId="second"))
    assert items(worker) == []


async def test_every_batch_is_counted_once_however_often_it_is_replayed() -> None:
    worker = fake_worker()
    await handle_operations(worker, codes_request())
    batches = items(worker)
    await run_batches_through(worker)
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.status is OperationStatus.COMPLETED
    assert state.successful_items == 1000
    assert worker.store.reader.code_counts(7, CODEGEN).unique_codes == 1000
    # every batch again: a replay of the items topic after a crash
    for batch in batches:
        await guarded(worker.ctx, event(batch, topic="unit.items"), process.handle)
    assert worker.out["results"].sent == [], "batches already counted are not processed again"
    sunk = BatchSunk(
        operation_id=CODEGEN, sponsor_id=7, batch_index=0, count=250, succeeded=250,
        failed=0, skipped=0, sunk_at=NOW,
    )  # fmt: skip
    await guarded(worker.ctx, event(sunk, topic="unit.progress"), count.handle)
    assert worker.ctx.tables.operations.load(CODEGEN) == state


async def test_a_paused_operation_holds_its_batches_and_resume_releases_them() -> None:
    worker = fake_worker()
    await handle_operations(worker, codes_request())
    command = ControlCommand(
        operation_id=CODEGEN, sponsor_id=7, action=ControlAction.PAUSE, requested_by="u",
        requested_at=NOW,
    )  # fmt: skip
    await guarded(worker.ctx, event(command, topic="unit.control"), control.handle)
    first = items(worker)[0]
    await guarded(worker.ctx, event(first, topic="unit.items"), process.handle)
    assert worker.out["results"].sent == []
    (held,) = worker.out["operations"].messages(OperationsMessage)
    assert isinstance(held, BatchHold) and held.batch.batch_index == 0
    await handle_operations(worker, held)
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.held_count == 1


async def test_a_cancelled_operation_skips_what_is_left() -> None:
    worker = fake_worker()
    await handle_operations(worker, codes_request())
    cancel = ControlCommand(
        operation_id=CODEGEN, sponsor_id=7, action=ControlAction.CANCEL, requested_by="u",
        requested_at=NOW,
    )  # fmt: skip
    await guarded(worker.ctx, event(cancel, topic="unit.control"), control.handle)
    await run_batches_through(worker)
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.status is OperationStatus.CANCELLED
    assert state.skipped_items == 1000 and state.successful_items == 0
    assert worker.store.reader.item_counts(7, CODEGEN) == {"Skipped": 1000}
    assert CODEGEN not in worker.ctx.registry.stops, "an ended operation is forgotten"


async def test_a_cancel_before_its_request_is_applied_when_the_request_comes() -> None:
    worker = fake_worker()
    cancel = ControlCommand(
        operation_id=CODEGEN, sponsor_id=7, action=ControlAction.CANCEL, requested_by="u",
        requested_at=NOW,
    )  # fmt: skip
    await guarded(worker.ctx, event(cancel, topic="unit.control"), control.handle)
    assert worker.ctx.tables.early_controls.get(CODEGEN) is ControlAction.CANCEL
    await handle_operations(worker, codes_request())
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and state.stop_reason == "CANCELLED"
    assert worker.ctx.tables.early_controls.get(CODEGEN) is None, "applied: dropped"


async def test_a_link_send_waits_for_all_its_chunks() -> None:
    worker = fake_worker()
    await handle_operations(worker, link_header())
    await handle_operations(worker, chunk(0, 0, 4))
    assert items(worker) == [], "a half-arrived submission must not start"
    await handle_operations(worker, chunk(1, 4, 2, submission="another"))
    assert items(worker) == [], "chunks of another submission are ignored"
    await handle_operations(worker, chunk(1, 4, 2))
    assert [b.batch_index for b in items(worker)] == [2]
    state = worker.ctx.tables.operations.load(LINKS)
    assert state is not None and state.held_count == 2  # released by the next tick
    assert sorted(worker.store.state.item_batches(7, LINKS, [0, 1, 2])) == [0, 1, 2]


async def test_an_abort_settles_the_batches_that_never_came() -> None:
    worker = fake_worker()
    await handle_operations(worker, link_header())
    await handle_operations(worker, chunk(0, 0, 4))
    abort = OperationAbort(operation_id=LINKS, sponsor_id=7, reason="x", submission_id="first")
    await handle_operations(worker, abort)
    (sunk,) = worker.out["progress"].messages(BatchSunk)
    assert (sunk.batch_index, sunk.skipped) == (2, 2)
    state = worker.ctx.tables.operations.load(LINKS)
    assert state is not None and state.stop_reason == "SUBMISSION_INCOMPLETE"


async def test_a_link_batch_is_sent_through_its_provider() -> None:
    worker = fake_worker()
    await handle_operations(worker, link_header(total=2, batch_size=2, chunks=1))
    await handle_operations(worker, chunk(0, 0, 2))
    await run_batches_through(worker)
    assert [m["key"] for m in worker.providers["SMS"].sent] == [f"{LINKS}:0", f"{LINKS}:1"]
    state = worker.ctx.tables.operations.load(LINKS)
    assert state is not None and state.status is OperationStatus.COMPLETED


async def test_a_redrive_counts_stored_batches_and_resends_the_others() -> None:
    worker = fake_worker()
    await handle_operations(worker, codes_request())
    first, second, *_ = items(worker)
    # batch 0 was processed and stored, its announcement lost; batch 1 was lost whole
    await guarded(worker.ctx, event(first, topic="unit.items"), process.handle)
    results = [event(r, topic="unit.results") for r in worker.out["results"].messages(ResultBatch)]
    await sink.store(worker.ctx, results)
    worker.out["progress"].clear()
    worker.out["items"].clear()
    await handle_operations(
        worker, Redrive(operation_id=CODEGEN, sponsor_id=7, batch_indexes=[0, 1])
    )
    (counted,) = worker.out["progress"].messages(BatchSunk)
    assert counted.batch_index == 0 and counted.succeeded == 250
    assert [b.batch_index for b in items(worker)] == [second.batch_index]


@pytest.mark.parametrize(
    ("handle", "topic"),
    [
        (explode.handle, "unit.operations"),
        (process.handle, "unit.items"),
        (count.handle, "unit.progress"),
        (control.handle, "unit.control"),
    ],
)
async def test_malformed_messages_are_dead_lettered(handle: Any, topic: str) -> None:
    worker = fake_worker()
    await guarded(worker.ctx, event(b"{not json", sponsor_id=7, topic=topic, offset=41), handle)
    (letter,) = worker.out["dead_letter"].messages(DeadLetter)
    assert (letter.source_topic, letter.offset, letter.payload) == (topic, 41, "{not json")


async def test_a_message_keyed_by_another_sponsor_is_dead_lettered() -> None:
    worker = fake_worker()
    wrong = event(codes_request(), sponsor_id=8)
    await guarded(worker.ctx, wrong, explode.handle)
    (letter,) = worker.out["dead_letter"].messages(DeadLetter)
    assert "does not match sponsorId" in letter.reason
    assert worker.ctx.tables.operations.load(CODEGEN) is None


async def test_the_sink_dead_letters_bad_results_and_stores_the_rest() -> None:
    worker = fake_worker()
    await handle_operations(worker, codes_request(total=10, batch_size=10))
    (batch,) = items(worker)
    await guarded(worker.ctx, event(batch, topic="unit.items"), process.handle)
    (result,) = worker.out["results"].messages(ResultBatch)
    stored = await sink.store(
        worker.ctx,
        [event(b"[]", sponsor_id=7, topic="unit.results"), event(result, topic="unit.results")],
    )
    assert stored == 1
    assert len(worker.out["dead_letter"].sent) == 1
    assert worker.store.reader.item_counts(7, CODEGEN) == {ItemStatus.SUCCESS.value: 10}
    (sunk,) = worker.out["progress"].messages(BatchSunk)
    assert sunk.succeeded == 10 and len(sunk.recent) == 3
    state = worker.ctx.tables.operations.load(CODEGEN)
    assert state is not None and not is_batch_done(state, 0), "counted only from progress"


class RecordingWebhooks:
    def __init__(self) -> None:
        self.started: list[tuple[str, int | None]] = []

    def start(self, state: Any, event: str, *, milestone: int | None = None) -> None:
        self.started.append((event, milestone))

    def settled(self, operation_id: str, event: str) -> None:
        pass


async def test_each_progress_milestone_is_notified_once() -> None:
    worker = fake_worker()
    webhooks = RecordingWebhooks()
    worker.ctx.webhooks = webhooks  # type: ignore[assignment]
    request = codes_request(
        callbackUrl="https://hooks.example.com/bulk", progressNotifications=True
    )
    await handle_operations(worker, request)
    await run_batches_through(worker)
    assert webhooks.started == [
        ("progress_update", 25),
        ("progress_update", 50),
        ("progress_update", 75),
        ("operation_completed", None),
    ]
