"""Job operations in the worker, without a broker: one batch to the end (attempts, timeouts,
retries with backoff, a stop), answers matched to the attempt waiting for them, and the
handlers from a job header and its item chunks to counted progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from api.services import retries
from schemas.common import ErrorCategory, ItemStatus, OperationStatus, OperationType
from schemas.job_wire import JobExecutor, JobItem, JobRun
from schemas.jobs import JobBatch, JobControl, JobItemOutcome, JobResult
from schemas.messages import (
    BatchSunk,
    ControlAction,
    ControlCommand,
    DeadLetter,
    ItemBatch,
    JobItemsChunk,
    OperationRequested,
    ReleaseTick,
    ResultBatch,
)
from streams.agents import control, count, explode, guarded, job_results, process, sink
from streams.jobs.running import SlotPacer, run_job_batch, unless_set
from streams.jobs.waits import JobWaits
from streams.testing import FakeWorker, event, fake_worker

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
OP = "job_" + "c" * 32
TYPE = "ticket:update_status"


def job_run(**changes: Any) -> JobRun:
    values: dict[str, Any] = {
        "job_type": TYPE,
        "type_version": 1,
        "executor": JobExecutor.KAFKA,
        "batch_size": 3,
        "timeout_seconds": 30,
        "max_retries": 2,
        "backoff_seconds": 1,
        "backoff_multiplier": 2,
        "max_backoff_seconds": 60,
        "max_concurrency": 2,
        "data": {"status": "closed"},
    }
    return JobRun(**(values | changes))


def job_items(start: int, count: int) -> list[JobItem]:
    return [
        JobItem(index=i, item_id=f"{OP}:{i}", payload={"ticketId": i + 1})
        for i in range(start, start + count)
    ]


def item_batch(count: int = 3, **run: Any) -> ItemBatch:
    return ItemBatch(
        operation_id=OP,
        sponsor_id=7,
        operation_type=OperationType.JOB,
        batch_index=0,
        start_index=0,
        count=count,
        job=job_run(**run),
        job_items=job_items(0, count),
    )


def outcome(
    item: JobItem, status: ItemStatus = ItemStatus.SUCCESS, **fields: Any
) -> JobItemOutcome:
    if status is ItemStatus.SUCCESS:
        fields.setdefault("result_data", {"ticketId": item.payload["ticketId"]})
    else:
        fields.setdefault("error_code", "REFUSED")
        fields.setdefault("error_message", "Insufficient permissions")
    return JobItemOutcome(index=item.index, item_id=item.item_id, status=status, **fields)


def answer(job: JobBatch, outcomes: list[JobItemOutcome]) -> JobResult:
    return JobResult(
        operation_id=job.operation_id,
        sponsor_id=job.sponsor_id,
        job_type=job.job_type,
        batch_index=job.batch_index,
        attempt=job.attempt,
        worker_id="w1",
        outcomes=outcomes,
        completed_at=NOW,
    )


class ScriptedExecutor:
    """Answers each attempt with ``script(job)`` (None: no answer by the deadline)."""

    def __init__(self, script: Callable[[JobBatch], JobResult | None]) -> None:
        self.script = script
        self.jobs: list[JobBatch] = []

    async def run(self, job: JobBatch) -> JobResult | None:
        self.jobs.append(job)
        return self.script(job)


class Gate:
    def __init__(self) -> None:
        self.reason: str | None = None

    def stop_reason(self, operation_id: str) -> str | None:
        return self.reason

    def stop(self, operation_id: str, reason: str) -> None:
        self.reason = self.reason or reason

    def reserve(self, batch: ItemBatch, wanted: int) -> int:
        return wanted


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def run(batch: ItemBatch, executor: ScriptedExecutor, gate: Gate | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    sleeps = Sleeps()
    result = await run_job_batch(batch, executor=executor, gate=gate or Gate(), sleep=sleeps, **kw)
    return result, sleeps.waits


async def test_every_item_answered_succeeds_in_one_attempt() -> None:
    executor = ScriptedExecutor(lambda job: answer(job, [outcome(i) for i in job.items]))
    result, waits = await run(item_batch(), executor)
    assert result.statuses == [ItemStatus.SUCCESS] * 3
    assert result.results == ['{"ticketId":1}', '{"ticketId":2}', '{"ticketId":3}']
    assert result.attempts == [1, 1, 1] and result.errors == [] and waits == []
    job = executor.jobs[0]
    assert (job.attempt, job.job_type, job.data) == (1, TYPE, {"status": "closed"})
    assert (job.deadline - datetime.now(UTC)).total_seconds() == pytest.approx(30, abs=2)


async def test_retryable_failures_go_again_alone_after_the_backoff() -> None:
    def script(job: JobBatch) -> JobResult:
        return answer(
            job,
            [
                outcome(i, ItemStatus.FAILED, is_retryable=True, error_code="BUSY")
                if i.index == 1 and job.attempt < 3
                else outcome(i)
                for i in job.items
            ],
        )

    executor = ScriptedExecutor(script)
    result, waits = await run(item_batch(), executor)
    assert result.statuses == [ItemStatus.SUCCESS] * 3
    assert [[i.index for i in job.items] for job in executor.jobs] == [[0, 1, 2], [1], [1]]
    assert [job.attempt for job in executor.jobs] == [1, 2, 3]
    assert waits == [1.0, 2.0]  # backoff 1 s, then twice as long
    assert result.attempts == [1, 3, 1]


async def test_a_permanent_failure_fails_at_once_and_retries_run_out() -> None:
    def script(job: JobBatch) -> JobResult:
        return answer(
            job,
            [
                outcome(i, ItemStatus.FAILED, error_category=ErrorCategory.BUSINESS)
                if i.index == 0
                else outcome(i, ItemStatus.FAILED, is_retryable=True, error_code="BUSY")
                for i in job.items
            ],
        )

    executor = ScriptedExecutor(script)
    result, _ = await run(item_batch(count=2), executor)
    assert result.statuses == [ItemStatus.FAILED, ItemStatus.FAILED]
    first, second = result.errors
    assert (first.error_code, first.error_message, first.is_retryable) == (
        "REFUSED",
        "Insufficient permissions",
        False,
    )
    assert (first.error_category, first.item_id) == (ErrorCategory.BUSINESS, f"{OP}:0")
    assert (second.error_code, second.retry_count) == ("BUSY", 2)
    assert result.attempts == [1, 3]  # max_retries=2: three attempts


async def test_no_answer_is_a_timeout_retried_first_then_failed() -> None:
    executor = ScriptedExecutor(lambda job: None)
    result, waits = await run(item_batch(count=2, max_retries=1), executor)
    assert len(executor.jobs) == 2 and waits == [1.0]
    assert result.statuses == [ItemStatus.FAILED] * 2
    assert {e.error_code for e in result.errors} == {"TIMEOUT"}
    assert (
        result.errors[0].is_retryable and "No outcome within 30s" in result.errors[0].error_message
    )


async def test_outcomes_for_other_items_are_ignored_and_left_out_ones_time_out() -> None:
    def script(job: JobBatch) -> JobResult:
        first = job.items[0]
        stranger = JobItemOutcome(index=1, item_id="someone-else", status=ItemStatus.SUCCESS)
        return answer(job, [outcome(first), stranger] if job.attempt == 1 else [])

    result, _ = await run(item_batch(count=2, max_retries=0), ScriptedExecutor(script))
    assert result.statuses == [ItemStatus.SUCCESS, ItemStatus.FAILED]
    assert result.errors[0].error_code == "TIMEOUT"


async def test_a_stop_starts_no_new_attempt() -> None:
    gate = Gate()

    def script(job: JobBatch) -> JobResult:
        gate.reason = "CANCELLED"  # cancelled while the first attempt ran
        return answer(
            job,
            [
                outcome(job.items[0]),
                outcome(job.items[1], ItemStatus.FAILED, is_retryable=True, error_code="BUSY"),
            ],
        )

    executor = ScriptedExecutor(script)
    result, _ = await run(item_batch(count=2), executor, gate)
    assert len(executor.jobs) == 1
    assert result.statuses == [ItemStatus.SUCCESS, ItemStatus.FAILED]
    assert result.errors[0].error_code == "BUSY"

    gate.reason = "CANCELLED"
    never = ScriptedExecutor(lambda job: None)
    skipped, _ = await run(item_batch(count=2), never, gate)
    assert never.jobs == []
    assert skipped.statuses == [ItemStatus.SKIPPED] * 2
    assert {e.error_code for e in skipped.errors} == {"CANCELLED"}


async def test_a_worker_that_drops_a_cancelled_batch_answers_skipped() -> None:
    executor = ScriptedExecutor(
        lambda job: answer(
            job,
            [
                outcome(i, ItemStatus.SKIPPED, error_code="CANCELLED", error_message="x")
                for i in job.items
            ],
        )
    )
    result, _ = await run(item_batch(count=2), executor)
    assert result.statuses == [ItemStatus.SKIPPED] * 2
    assert [e.error_code for e in result.errors] == ["CANCELLED", "CANCELLED"]


async def test_oversized_result_data_is_replaced_by_a_note() -> None:
    executor = ScriptedExecutor(
        lambda job: answer(job, [outcome(i, result_data={"blob": "x" * 10_000}) for i in job.items])
    )
    result, _ = await run(item_batch(count=1), executor)
    assert result.results == ['{"dropped":"resultData over 8192 bytes"}']


async def test_the_rate_limit_spaces_batches_by_their_items() -> None:
    clock = [100.0]
    pacer = SlotPacer(10.0, clock=lambda: clock[0])
    assert pacer.reserve(5) == 0.0
    assert pacer.reserve(5) == pytest.approx(0.5)
    clock[0] = 102.0
    assert pacer.reserve(1) == 0.0
    executor = ScriptedExecutor(lambda job: answer(job, [outcome(i) for i in job.items]))
    _, waits = await run(item_batch(), executor, pacer=SlotPacer(3.0, clock=lambda: 0.0))
    assert waits == [0.0]


async def test_an_answer_goes_only_to_the_attempt_waiting_for_it() -> None:
    waits = JobWaits()
    job = JobBatch(
        operation_id=OP,
        sponsor_id=7,
        job_type=TYPE,
        batch_index=0,
        attempt=2,
        deadline=NOW,
        items=job_items(0, 1),
    )
    reply = answer(job, [outcome(job.items[0])])
    with waits.expect(job) as (pending, first), waits.expect(job) as (shared, second):
        assert (first, second, shared is pending) == (True, False, True)
        assert not waits.deliver(reply.model_copy(update={"attempt": 1}))  # an old attempt's
        assert not waits.deliver(reply.model_copy(update={"sponsor_id": 8}))  # foreign
        assert not waits.deliver(reply.model_copy(update={"job_type": "ticket:delete"}))
        assert waits.deliver(reply)
        assert not waits.deliver(reply)  # the same answer again
        assert (await pending) == reply
    assert len(waits) == 0
    assert not waits.deliver(reply)  # late: nothing waits any more


# -- the handlers, from the header to counted progress ------------------------------------


def header(total: int = 5, **run: Any) -> OperationRequested:
    return OperationRequested(
        operation_id=OP,
        operation_type=OperationType.JOB,
        sponsor_id=7,
        requested_by="u",
        requested_at=NOW,
        total_items=total,
        job=job_run(**run),
        submission_id="first",
    )


def items_chunk(index: int, start: int, count: int) -> JobItemsChunk:
    return JobItemsChunk(
        operation_id=OP,
        sponsor_id=7,
        chunk_index=index,
        start_index=start,
        items=job_items(start, count),
        submission_id="first",
    )


async def answer_handed_out(worker: FakeWorker, reply: Callable[[JobBatch], JobResult]) -> int:
    """Answer every job batch on the type's topic through the job-results agent."""
    topic = worker.ctx.out.job_topic(TYPE)
    jobs = topic.messages(JobBatch)  # type: ignore[attr-defined]
    topic.clear()  # type: ignore[attr-defined]
    for job in jobs:
        result = reply(job)
        await guarded(worker.ctx, event(result, topic="unit.job-results"), job_results.handle)
    return len(jobs)


async def release_ticks(worker: FakeWorker) -> None:
    """A release tick (the worker's timer sends one each second for an operation holding
    batches), and what the worker asked of its explode agent since, handled."""
    await guarded(worker.ctx, event(ReleaseTick(operation_id=OP, sponsor_id=7)), explode.handle)
    while worker.out["operations"].sent:
        asked = [value for _, value in worker.out["operations"].sent if value]
        worker.out["operations"].clear()
        for value in asked:
            await guarded(worker.ctx, event(value, sponsor_id=7), explode.handle)


async def run_items(worker: FakeWorker, reply: Callable[[JobBatch], JobResult]) -> None:
    await release_ticks(worker)
    batches = worker.out["items"].messages(ItemBatch)
    worker.out["items"].clear()
    running = [
        asyncio.create_task(guarded(worker.ctx, event(b, topic="unit.items"), process.handle))
        for b in batches
    ]
    while not all(task.done() for task in running):
        await asyncio.sleep(0)
        await answer_handed_out(worker, reply)
    results = [event(r, topic="unit.results") for r in worker.out["results"].messages(ResultBatch)]
    worker.out["results"].clear()
    await sink.store(worker.ctx, results)
    for sunk in worker.out["progress"].messages(BatchSunk):
        await guarded(worker.ctx, event(sunk, topic="unit.progress"), count.handle)
    worker.out["progress"].clear()


def refuse_ticket_3(job: JobBatch) -> JobResult:
    return answer(
        job,
        [
            outcome(i, ItemStatus.FAILED) if i.payload["ticketId"] == 3 else outcome(i)
            for i in job.items
        ],
    )


async def test_a_job_operation_runs_from_its_chunks_to_exact_counts() -> None:
    worker = fake_worker()
    ops = lambda m: guarded(worker.ctx, event(m), explode.handle)  # noqa: E731
    await ops(header())
    await ops(items_chunk(0, 0, 3))
    await ops(items_chunk(1, 3, 2))
    state = worker.ctx.tables.operations.load(OP)
    assert state is not None and state.job_type == TYPE and state.release_window == 2
    await release_ticks(worker)
    batches = worker.out["items"].messages(ItemBatch)
    assert sorted((b.batch_index, b.count) for b in batches) == [(0, 3), (1, 2)]
    await run_items(worker, refuse_ticket_3)
    state = worker.ctx.tables.operations.load(OP)
    assert state is not None and state.status is OperationStatus.PARTIALLY_COMPLETED
    assert (state.successful_items, state.failed_items) == (4, 1)
    assert [e.error_message for e in state.errors] == ["Insufficient permissions"]
    stored = {r["item_index"]: r for r in worker.store.tables.of("items", 7, OP)}
    assert stored[0]["result_data"] == '{"ticketId":1}' and stored[2]["status"] == "Failed"


async def test_a_replayed_chunk_and_a_replayed_answer_count_once() -> None:
    worker = fake_worker()
    ops = lambda m: guarded(worker.ctx, event(m), explode.handle)  # noqa: E731
    await ops(header(total=3))
    await ops(items_chunk(0, 0, 3))
    await ops(items_chunk(0, 0, 3))  # the chunk again: the batch is released once more
    replies: list[JobResult] = []

    def remember(job: JobBatch) -> JobResult:
        replies.append(answer(job, [outcome(i) for i in job.items]))
        return replies[-1]

    await run_items(worker, remember)
    assert len(replies) == 1  # the replayed release shared the wait: handed out once
    for reply in replies:  # every answer once more: nothing waits for them now
        await guarded(worker.ctx, event(reply, topic="unit.job-results"), job_results.handle)
    state = worker.ctx.tables.operations.load(OP)
    assert state is not None and state.status is OperationStatus.COMPLETED
    assert (state.processed_items, state.successful_items) == (3, 3)
    assert worker.out["dead_letter"].sent == []


async def test_malformed_or_misaddressed_results_are_dead_lettered() -> None:
    worker = fake_worker()
    bad = event(b'{"operationId": "x"}', sponsor_id=7, topic="unit.job-results")
    await guarded(worker.ctx, bad, job_results.handle)
    job = JobBatch(
        operation_id=OP,
        sponsor_id=7,
        job_type=TYPE,
        batch_index=0,
        deadline=NOW,
        items=job_items(0, 1),
    )
    misaddressed = event(answer(job, []), sponsor_id=8, topic="unit.job-results")
    await guarded(worker.ctx, misaddressed, job_results.handle)
    letters = worker.out["dead_letter"].messages(DeadLetter)
    assert [letter.error_type for letter in letters] == ["ValidationError", "InvalidMessage"]


async def test_a_chunk_of_the_wrong_kind_is_dead_lettered() -> None:
    worker = fake_worker()
    await guarded(worker.ctx, event(header(total=3)), explode.handle)
    from tests.unit.test_agents import chunk as recipients_chunk

    wrong = recipients_chunk(0, 0, 3).model_copy(update={"operation_id": OP})
    await guarded(worker.ctx, event(wrong), explode.handle)
    letters = worker.out["dead_letter"].messages(DeadLetter)
    assert len(letters) == 1 and "takes job items" in letters[0].reason


async def test_a_cancel_tells_the_types_workers_once() -> None:
    worker = fake_worker()
    await guarded(worker.ctx, event(header(total=3)), explode.handle)
    cancel = ControlCommand(
        operation_id=OP,
        sponsor_id=7,
        action=ControlAction.CANCEL,
        requested_by="u",
        requested_at=NOW,
    )
    for _ in range(2):  # the second cancel changes nothing and tells no one
        await guarded(worker.ctx, event(cancel, topic="unit.control"), control.handle)
    notices = worker.out["job_control"].messages(JobControl)
    assert [(n.operation_id, n.job_type, n.action) for n in notices] == [(OP, TYPE, "cancel")]
    assert worker.out["job_control"].sent[0][0] == OP.encode()


async def test_a_stop_during_the_backoff_starts_no_retry() -> None:
    gate = Gate()

    def busy(job: JobBatch) -> JobResult:
        return answer(
            job,
            [
                outcome(i, ItemStatus.FAILED, is_retryable=True, error_code="BUSY")
                for i in job.items
            ],
        )

    async def cancelled_meanwhile(seconds: float) -> None:
        gate.reason = "CANCELLED"

    executor = ScriptedExecutor(busy)
    result = await run_job_batch(
        item_batch(count=2), executor=executor, gate=gate, sleep=cancelled_meanwhile
    )
    assert len(executor.jobs) == 1
    assert result.statuses == [ItemStatus.FAILED, ItemStatus.FAILED]
    assert {e.error_code for e in result.errors} == {"BUSY"}


async def test_a_retry_reads_the_failed_items_back_from_their_stored_batches() -> None:
    worker = fake_worker()
    await guarded(worker.ctx, event(header(total=5)), explode.handle)
    await guarded(worker.ctx, event(items_chunk(0, 0, 3)), explode.handle)
    await guarded(worker.ctx, event(items_chunk(1, 3, 2)), explode.handle)
    found = retries.job_items(worker.store.state, 7, OP, [4, 1], batch_size=3)
    assert [(i.index, i.item_id, i.payload) for i in found] == [
        (1, f"{OP}:1", {"ticketId": 2}),
        (4, f"{OP}:4", {"ticketId": 5}),
    ]
    assert retries.job_items(worker.store.state, 7, "job_" + "f" * 32, [1], batch_size=3) == []


# -- a rebalance asks for the batches in flight back ---------------------------------------


async def test_unless_set_gives_the_result_or_cancels_the_work() -> None:
    event_ = asyncio.Event()
    assert await unless_set(event_, asyncio.sleep(0, result="done")) == "done"

    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    waiting = asyncio.create_task(unless_set(event_, forever()))
    await started.wait()
    event_.set()
    assert await waiting is None
    assert cancelled.is_set(), "the work given up is cancelled"

    event_.clear()
    started.clear()
    cancelled.clear()
    caller = asyncio.create_task(unless_set(event_, forever()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(cancelled.wait(), timeout=5)


async def test_a_batch_handed_back_for_a_rebalance_starts_over_and_counts_once() -> None:
    worker = fake_worker()
    await guarded(worker.ctx, event(header(total=3)), explode.handle)
    await guarded(worker.ctx, event(items_chunk(0, 0, 3)), explode.handle)
    await release_ticks(worker)
    [batch] = worker.out["items"].messages(ItemBatch)
    worker.out["items"].clear()
    handed_out = worker.ctx.out.job_topic(TYPE)
    running = asyncio.create_task(
        guarded(worker.ctx, event(batch, topic="unit.items"), process.handle)
    )
    for _ in range(100):  # a few turns of the loop: the batch is handed out, then waits
        if handed_out.sent:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0)
    assert handed_out.sent, "the batch handed out to the type's workers"  # type: ignore[attr-defined]
    worker.ctx.registry.hand_back.set()  # the rebalance has waited its grace
    await asyncio.wait_for(running, timeout=5)
    worker.ctx.registry.hand_back.clear()
    assert worker.out["items"].messages(ItemBatch) == [batch], "back on its topic, unchanged"
    assert worker.out["results"].sent == [], "no outcome for the batch given back"
    assert len(worker.ctx.registry.job_waits) == 0, "its wait given up"

    await run_items(worker, lambda job: answer(job, [outcome(i) for i in job.items]))
    state = worker.ctx.tables.operations.load(OP)
    assert state is not None and state.status is OperationStatus.COMPLETED
    assert (state.processed_items, state.successful_items) == (3, 3)
