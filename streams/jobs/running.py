"""One item batch of a job operation, from the first attempt to every item's outcome.

Each attempt hands the items still open to the executor with a deadline (the type's
``timeoutSeconds``). From the answer, an item ends ``Success``, ``Skipped`` or, with a
permanent error, ``Failed``; an item with a retryable error, and every item the answer left
out (``TIMEOUT``: the whole batch when no answer came), goes again in the next attempt after
the type's backoff, until ``maxRetries`` retries are spent and it ends ``Failed`` with its last
error. Once the operation stops (cancelled), no new attempt starts: what is open ends as it
stood (its last error, or ``Skipped`` if it had none).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import orjson

from schemas.common import ErrorCategory, ItemError, ItemStatus
from schemas.jobs import JobBatch, JobItem, JobItemOutcome, JobResult
from schemas.messages import ItemBatch, ResultBatch
from streams.jobs.executors import AttemptFailure, Executor
from streams.sending import OperationGate, halting, stop_error

T = TypeVar("T")

#: A result's ``resultData`` longer than this (as JSON) is kept as a note that it was dropped.
MAX_RESULT_DATA_BYTES = 8192


class SlotPacer:
    """At most ``rate`` items per second: each batch waits for its items' share of time.

    One per job type and worker process (a token bucket of one token per item would need a
    burst as large as a batch)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._next = 0.0

    def reserve(self, items: int) -> float:
        """Take ``items`` slots; how long to wait before using them."""
        now = self._clock()
        start = max(now, self._next)
        self._next = start + items / self.rate
        return start - now


async def unless_set(event: asyncio.Event, work: Awaitable[T]) -> T | None:
    """``work``'s result; or None if ``event`` is set first, and then ``work`` is cancelled
    (it is also cancelled when the caller is)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


@dataclass
class _Done:
    status: ItemStatus
    result: str | None = None
    error: ItemError | None = None


async def run_job_batch(
    batch: ItemBatch,
    *,
    executor: Executor,
    gate: OperationGate,
    pacer: SlotPacer | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ResultBatch:
    run, items = batch.job, batch.job_items
    if run is None or items is None or len(items) != batch.count:
        raise ValueError("a job batch needs its run and one item per position")
    started = time.perf_counter()
    open_items = {item.index: item for item in items}
    done: dict[int, _Done] = {}
    last_error: dict[int, ItemError] = {}
    tries: dict[int, int] = dict.fromkeys(open_items, 0)
    attempt = 0
    while open_items:
        if attempt:
            await sleep(run.backoff(attempt))
        if pacer is not None:
            await sleep(pacer.reserve(len(open_items)))
        reason = halting(gate, batch.operation_id)  # after the waits: a stop meanwhile counts
        if reason is not None:
            for index, item in open_items.items():
                error = last_error.get(index)
                done[index] = (
                    _Done(ItemStatus.FAILED, error=error)
                    if error is not None
                    else _Done(ItemStatus.SKIPPED, error=stop_error(reason, item.item_id, index))
                )
            break
        attempt += 1
        job = JobBatch(
            operation_id=batch.operation_id,
            sponsor_id=batch.sponsor_id,
            job_type=run.job_type,
            batch_index=batch.batch_index,
            attempt=attempt,
            deadline=datetime.now(UTC) + timedelta(seconds=run.timeout_seconds),
            data=run.data,
            items=list(open_items.values()),
        )
        answer = await executor.run(job)
        answers = _answers(job, answer)
        for index, item in list(open_items.items()):
            tries[index] += 1
            outcome = answers.get(index)
            if outcome is not None and outcome.status is not ItemStatus.FAILED:
                done[index] = _finished(outcome)
                del open_items[index]
                continue
            error = (
                _failed_attempt(item, answer, attempt)
                if isinstance(answer, AttemptFailure)
                else _error(item, outcome, attempt, run.timeout_seconds)
            )
            last_error[index] = error
            if not error.is_retryable or attempt > run.max_retries:
                done[index] = _Done(ItemStatus.FAILED, error=error)
                del open_items[index]
    ordered = [done[item.index] for item in items]
    return ResultBatch(
        operation_id=batch.operation_id,
        sponsor_id=batch.sponsor_id,
        operation_type=batch.operation_type,
        batch_index=batch.batch_index,
        start_index=batch.start_index,
        statuses=[d.status for d in ordered],
        results=[d.result for d in ordered],
        errors=[d.error for d in ordered if d.error is not None],
        processed_at=datetime.now(UTC),
        duration_ms=(time.perf_counter() - started) * 1000,
        attempts=[tries[item.index] for item in items],
        item_ids=[item.item_id for item in items],
    )


def _answers(job: JobBatch, result: JobResult | AttemptFailure | None) -> dict[int, JobItemOutcome]:
    """The answer's outcomes for items of ``job`` (by index and id); others are ignored."""
    if not isinstance(result, JobResult):
        return {}
    asked = {item.index: item.item_id for item in job.items}
    return {o.index: o for o in result.outcomes if asked.get(o.index) == o.item_id}


def _finished(outcome: JobItemOutcome) -> _Done:
    if outcome.status is ItemStatus.SUCCESS:
        data = orjson.dumps(outcome.result_data) if outcome.result_data is not None else None
        if data is not None and len(data) > MAX_RESULT_DATA_BYTES:
            data = orjson.dumps({"dropped": f"resultData over {MAX_RESULT_DATA_BYTES} bytes"})
        return _Done(ItemStatus.SUCCESS, result=data.decode() if data is not None else None)
    assert outcome.error_code and outcome.error_message
    return _Done(
        ItemStatus.SKIPPED,
        error=ItemError(
            item_index=outcome.index,
            item_id=outcome.item_id,
            error_code=outcome.error_code,
            error_message=outcome.error_message[:500],
            error_category=outcome.error_category or ErrorCategory.BUSINESS,
        ),
    )


def _failed_attempt(item: JobItem, failure: AttemptFailure, attempt: int) -> ItemError:
    return ItemError(
        item_index=item.index,
        item_id=item.item_id,
        error_code=failure.code,
        error_message=failure.message[:500],
        error_category=failure.category,
        is_retryable=failure.retryable,
        retry_count=attempt - 1,
    )


def _error(
    item: JobItem, outcome: JobItemOutcome | None, attempt: int, timeout: float
) -> ItemError:
    """The error of an item the attempt did not finish: the worker's, or ``TIMEOUT``."""
    if outcome is None:
        return ItemError(
            item_index=item.index,
            item_id=item.item_id,
            error_code="TIMEOUT",
            error_message=f"No outcome within {timeout:g}s (attempt {attempt})",
            error_category=ErrorCategory.SYSTEM,
            is_retryable=True,
            retry_count=attempt - 1,
        )
    assert outcome.error_code and outcome.error_message
    return ItemError(
        item_index=item.index,
        item_id=item.item_id,
        error_code=outcome.error_code,
        error_message=outcome.error_message[:500],
        error_category=outcome.error_category or ErrorCategory.PROCESSING,
        is_retryable=outcome.is_retryable,
        retry_count=attempt - 1,
    )
