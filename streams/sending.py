"""Sending one link-send item batch: pacing, bounded concurrency, retries, stop rules, budget.

The batch's items go out concurrently, at most ``maxConcurrency`` in flight per operation,
each through the sponsor's and the sender's token buckets. Transient failures are retried
with exponential backoff from ``retryDelaySeconds`` up to ``retryAttempts`` times (a 429
waits out its ``Retry-After`` without using an attempt); permanent failures fail at once.
Whether the operation may go on (``stopOnFirstError``, the budget, an aborted submission) is
asked of an :class:`OperationGate`, which the worker keeps in its operations table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from core import metrics
from schemas.common import ErrorCategory, ItemError, ItemStatus
from schemas.link_wire import PreparedRecipient
from schemas.messages import ItemBatch, ResultBatch
from streams.pacing import Pacer
from streams.providers.base import Provider, ProviderError

MAX_RATE_LIMIT_WAITS = 50

STOP_ERRORS: dict[str, tuple[str, ErrorCategory]] = {
    "STOP_ON_FIRST_ERROR": (
        "Skipped: the operation stopped at its first error",
        ErrorCategory.PROCESSING,
    ),
    "BUDGET_EXCEEDED": (
        "Skipped: the next message would exceed budgetLimit",
        ErrorCategory.BUSINESS,
    ),
    "CANCELLED": ("Skipped: the operation was cancelled", ErrorCategory.BUSINESS),
    "SUBMISSION_INCOMPLETE": (
        "Skipped: the submission did not fully reach Kafka",
        ErrorCategory.SYSTEM,
    ),
}


class OperationGate(Protocol):
    """What a batch asks about its operation while it sends."""

    def stop_reason(self, operation_id: str) -> str | None: ...

    def stop(self, operation_id: str, reason: str) -> None: ...

    def reserve(self, batch: ItemBatch, wanted: int) -> int:
        """How many of ``wanted`` sends the budget allows (the same answer on a replay)."""
        ...


def halting(gate: OperationGate, operation_id: str) -> str | None:
    """The reason sends that already hold a budget reservation must stop, if any.

    Running out of budget stops only the sends that got no reservation; the other reasons
    stop every send that has not started.
    """
    reason = gate.stop_reason(operation_id)
    return None if reason == "BUDGET_EXCEEDED" else reason


@dataclass
class _Outcome:
    status: ItemStatus
    result: str | None = None
    error: ItemError | None = None
    attempts: int = 0
    provider_ms: float = 0.0


def stop_error(reason: str, item_id: str, index: int) -> ItemError:
    message, category = STOP_ERRORS.get(reason, (f"Skipped: {reason}", ErrorCategory.PROCESSING))
    # model_construct: built here from trusted values, one per skipped item of a batch.
    return ItemError.model_construct(
        item_index=index,
        item_id=item_id,
        error_code=reason,
        error_message=message,
        error_category=category,
        is_retryable=reason != "STOP_ON_FIRST_ERROR",
        retry_count=0,
    )


async def send_link_batch(
    batch: ItemBatch,
    *,
    provider: Provider,
    pacer: Pacer,
    gate: OperationGate,
    in_flight: AbstractAsyncContextManager[None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ResultBatch:
    spec = batch.link
    recipients = batch.recipients
    if spec is None or recipients is None or len(recipients) != batch.count:
        raise ValueError("a link-send batch needs its spec and one recipient per item")
    op = batch.operation_id
    started = time.perf_counter()
    outcomes: list[_Outcome | None] = [None] * batch.count

    sendable = [i for i, r in enumerate(recipients) if r.skip is None]
    for i, recipient in enumerate(recipients):
        if recipient.skip is not None:
            outcomes[i] = _Outcome(ItemStatus.SKIPPED, error=recipient.skip)
    allowed = gate.reserve(batch, len(sendable)) if halting(gate, op) is None else 0
    if allowed < len(sendable) and gate.stop_reason(op) is None:
        gate.stop(op, "BUDGET_EXCEEDED")

    async def one(position: int, recipient: PreparedRecipient, may_send: bool) -> None:
        item_id = f"{op}:{recipient.index}"
        reason = halting(gate, op)
        if not may_send or reason is not None:
            outcomes[position] = _Outcome(
                ItemStatus.SKIPPED,
                error=stop_error(reason or "BUDGET_EXCEEDED", item_id, recipient.index),
            )
            return
        async with in_flight:
            outcome = await _send_with_retries(
                batch, recipient, item_id, provider, pacer, gate, sleep
            )
        outcomes[position] = outcome
        if outcome.status is ItemStatus.FAILED and spec.stop_on_first_error:
            gate.stop(op, "STOP_ON_FIRST_ERROR")

    await asyncio.gather(*(one(i, recipients[i], n < allowed) for n, i in enumerate(sendable)))
    done = [o for o in outcomes if o is not None]
    assert len(done) == batch.count
    return ResultBatch(
        operation_id=op,
        sponsor_id=batch.sponsor_id,
        operation_type=batch.operation_type,
        batch_index=batch.batch_index,
        start_index=batch.start_index,
        statuses=[o.status for o in done],
        results=[o.result for o in done],
        errors=[o.error for o in done if o.error is not None],
        processed_at=datetime.now(UTC),
        duration_ms=(time.perf_counter() - started) * 1000,
        channel=spec.channel,
        unit_cost=spec.price_per_message,
        attempts=[o.attempts for o in done],
        latencies_ms=[o.provider_ms for o in done],
    )


async def _send_with_retries(
    batch: ItemBatch,
    recipient: PreparedRecipient,
    item_id: str,
    provider: Provider,
    pacer: Pacer,
    gate: OperationGate,
    sleep: Callable[[float], Awaitable[None]],
) -> _Outcome:
    spec = batch.link
    assert spec is not None and recipient.address is not None and recipient.message is not None
    channel = spec.channel.value
    attempts = 0
    throttled = 0
    provider_ms = 0.0
    failure: ItemError | None = None
    while True:
        reason = halting(gate, batch.operation_id)
        if reason is not None:  # stopped meanwhile: no new attempt
            if failure is not None:
                return _Outcome(ItemStatus.FAILED, error=failure, attempts=attempts)
            return _Outcome(ItemStatus.SKIPPED, error=stop_error(reason, item_id, recipient.index))
        await pacer.acquire(batch.sponsor_id, channel, batch.operation_id)
        called = time.perf_counter()
        try:
            delivery = await provider.send(
                to=recipient.address,
                body=recipient.message,
                subject=spec.subject,
                idempotency_key=recipient.idempotency_key or item_id,
            )
            took = time.perf_counter() - called
            metrics.observe_send(channel, "success", took)
            return _Outcome(
                ItemStatus.SUCCESS,
                result=delivery.provider_message_id,
                attempts=attempts + 1,
                provider_ms=provider_ms + took * 1000,
            )
        except ProviderError as exc:
            took = time.perf_counter() - called
            metrics.observe_send(channel, "rate_limited" if exc.rate_limited else "error", took)
            provider_ms += took * 1000
            if exc.rate_limited and throttled < MAX_RATE_LIMIT_WAITS:
                throttled += 1  # a throttled request was not a delivery attempt
                pacer.pause_sender(channel, exc.retry_after or 1.0)
                continue
            attempts += 1
            failure = ItemError(
                item_index=recipient.index,
                item_id=item_id,
                error_code=exc.code,
                error_message=exc.message[:500],
                error_category=exc.category,
                is_retryable=exc.retryable,
                retry_count=attempts - 1,
            )
            if not exc.retryable or attempts > spec.retry_attempts:
                return _Outcome(
                    ItemStatus.FAILED, error=failure, attempts=attempts, provider_ms=provider_ms
                )
            delay = spec.retry_delay_seconds * (2 ** (attempts - 1))
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            metrics.SEND_RETRIES.labels(channel).inc()
            await sleep(delay)


def record_only(batch: ItemBatch) -> ResultBatch:
    """Items that need no message (dealer invitations without SMS): done once recorded;
    items the API marked invalid stay Skipped."""
    assert batch.recipients is not None and batch.link is not None
    ok = [r.skip is None for r in batch.recipients]
    return ResultBatch(
        operation_id=batch.operation_id,
        sponsor_id=batch.sponsor_id,
        operation_type=batch.operation_type,
        batch_index=batch.batch_index,
        start_index=batch.start_index,
        statuses=[ItemStatus.SUCCESS if good else ItemStatus.SKIPPED for good in ok],
        results=["recorded" if good else None for good in ok],
        errors=[r.skip for r in batch.recipients if r.skip is not None],
        processed_at=datetime.now(UTC),
        duration_ms=0.0,
        channel=batch.link.channel,
        attempts=[0] * batch.count,
    )


def skip_batch(batch: ItemBatch, reason: str) -> ResultBatch:
    """Every item of ``batch`` skipped because its operation stopped (e.g. was cancelled)."""
    op = batch.operation_id
    indexes = range(batch.start_index, batch.start_index + batch.count)
    return ResultBatch(
        operation_id=op,
        sponsor_id=batch.sponsor_id,
        operation_type=batch.operation_type,
        batch_index=batch.batch_index,
        start_index=batch.start_index,
        statuses=[ItemStatus.SKIPPED] * batch.count,
        results=[None] * batch.count,
        errors=[
            (recipient.skip if recipient.skip else stop_error(reason, f"{op}:{i}", i))
            for i, recipient in zip(indexes, batch.recipients, strict=True)
        ]
        if batch.recipients
        else [stop_error(reason, f"{op}:{i}", i) for i in indexes],
        processed_at=datetime.now(UTC),
        duration_ms=0.0,
        channel=batch.link.channel if batch.link else None,
        attempts=[0] * batch.count,
        tier_id=batch.code.tier_id if batch.code else None,
        expires_at=datetime.now(UTC) if batch.code else None,
    )
