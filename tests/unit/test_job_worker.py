"""The job-worker SDK's answers, without a broker: outcomes per item, the handler's errors
mapped (permanent, retryable, unexpected), bounded concurrency, and batch handlers held to
answering every item once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from bulkops.jobs import JobWorker, PermanentError, RetryableError
from schemas.common import ErrorCategory, ItemStatus
from schemas.jobs import JobBatch, JobItem, JobItemOutcome


def batch(count: int = 3) -> JobBatch:
    return JobBatch(
        operation_id="op-1",
        sponsor_id=7,
        job_type="ticket:update_status",
        batch_index=4,
        attempt=2,
        deadline=datetime.now(UTC) + timedelta(seconds=30),
        data={"status": "closed"},
        items=[
            JobItem(index=40 + i, item_id=f"t-{i}", payload={"ticketId": i}) for i in range(count)
        ],
    )


def worker(**kwargs: Any) -> JobWorker:
    return JobWorker("ticket:update_status", bootstrap="unused:9092", prefix="p", **kwargs)


async def refuse_odd(item: JobItem, job: JobBatch) -> dict[str, Any] | None:
    ticket = item.payload["ticketId"]
    if ticket == 1:
        raise PermanentError("FORBIDDEN", "Insufficient permissions for this ticket")
    if ticket == 2:
        raise RetryableError("LOCKED", "The ticket is being edited")
    return {"status": job.data["status"]}


def test_each_item_gets_its_outcome_and_the_errors_their_kind() -> None:
    result = asyncio.run(worker(handler=refuse_odd).handle(batch()))
    assert (result.operation_id, result.batch_index, result.attempt) == ("op-1", 4, 2)
    ok, refused, locked = result.outcomes
    assert (ok.index, ok.status, ok.result_data) == (40, ItemStatus.SUCCESS, {"status": "closed"})
    assert (refused.error_code, refused.is_retryable) == ("FORBIDDEN", False)
    assert refused.error_category is ErrorCategory.BUSINESS
    assert refused.error_message == "Insufficient permissions for this ticket"
    assert (locked.error_code, locked.is_retryable) == ("LOCKED", True)


def test_an_unexpected_exception_fails_the_item_as_retryable() -> None:
    async def broken(item: JobItem, job: JobBatch) -> dict[str, Any] | None:
        raise KeyError("ticketId")

    result = asyncio.run(worker(handler=broken).handle(batch(1)))
    (outcome,) = result.outcomes
    assert (outcome.status, outcome.error_code) == (ItemStatus.FAILED, "WORKER_EXCEPTION")
    assert outcome.is_retryable and outcome.error_category is ErrorCategory.SYSTEM
    assert "ticketId" in (outcome.error_message or "")


def test_items_run_at_most_concurrency_at_a_time() -> None:
    running = 0
    most = 0

    async def slow(item: JobItem, job: JobBatch) -> dict[str, Any] | None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return None

    result = asyncio.run(worker(handler=slow, concurrency=3).handle(batch(20)))
    assert most == 3
    assert [o.index for o in result.outcomes] == list(range(40, 60))
    assert all(o.status is ItemStatus.SUCCESS for o in result.outcomes)


def test_a_batch_handler_answers_the_whole_batch() -> None:
    async def all_at_once(job: JobBatch) -> list[JobItemOutcome]:
        return [
            JobItemOutcome(index=i.index, item_id=i.item_id, status=ItemStatus.SUCCESS)
            for i in job.items
        ]

    result = asyncio.run(worker(batch_handler=all_at_once).handle(batch()))
    assert [o.item_id for o in result.outcomes] == ["t-0", "t-1", "t-2"]


@pytest.mark.parametrize("answer", ["one short", "raises permanent", "raises"])
def test_a_batch_handler_that_fails_fails_every_item(answer: str) -> None:
    async def faulty(job: JobBatch) -> list[JobItemOutcome]:
        if answer == "raises permanent":
            raise PermanentError("GONE", "The board was archived")
        if answer == "raises":
            raise RuntimeError("database down")
        first = job.items[0]
        return [JobItemOutcome(index=first.index, item_id=first.item_id, status=ItemStatus.SUCCESS)]

    outcomes = asyncio.run(worker(batch_handler=faulty).handle(batch())).outcomes
    assert len(outcomes) == 3
    assert all(o.status is ItemStatus.FAILED for o in outcomes)
    expected = "GONE" if answer == "raises permanent" else "WORKER_EXCEPTION"
    assert {o.error_code for o in outcomes} == {expected}
    assert all(o.is_retryable is (answer != "raises permanent") for o in outcomes)


def test_a_worker_has_exactly_one_handler_and_its_topics() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        worker()
    with pytest.raises(ValueError, match="concurrency"):
        worker(handler=refuse_odd, concurrency=0)
    built = worker(handler=refuse_odd)
    assert (built.topic, built.results_topic) == ("p.jobs.ticket.update_status", "p.job-results")


def test_a_failed_outcome_names_its_error() -> None:
    with pytest.raises(ValidationError, match="errorCode and errorMessage"):
        JobItemOutcome(index=0, item_id="t", status=ItemStatus.FAILED)
    with pytest.raises(ValidationError, match="errorCode and errorMessage"):
        JobItemOutcome(index=0, item_id="t", status=ItemStatus.SKIPPED, error_code="CANCELLED")
    with pytest.raises(ValidationError, match="Success, Failed or Skipped"):
        JobItemOutcome(index=0, item_id="t", status=ItemStatus.PENDING)


def test_a_cancelled_operations_batch_is_answered_skipped_without_the_handler() -> None:
    calls: list[str] = []

    async def record(item: JobItem, job: JobBatch) -> dict[str, Any] | None:
        calls.append(item.item_id)
        return None

    built = worker(handler=record)
    built.mark_cancelled("op-1")
    assert built.is_cancelled("op-1") and not built.is_cancelled("op-2")
    result = asyncio.run(built.handle(batch()))
    assert calls == []
    assert {(o.status, o.error_code) for o in result.outcomes} == {
        (ItemStatus.SKIPPED, "CANCELLED")
    }
    assert built.control_topic == "p.job-control"


def test_a_worker_remembers_a_bounded_number_of_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bulkops.jobs.MAX_CANCELLED", 3)
    built = worker(handler=refuse_odd)
    for n in range(5):
        built.mark_cancelled(f"op-{n}")
    assert [built.is_cancelled(f"op-{n}") for n in range(5)] == [False, False, True, True, True]
