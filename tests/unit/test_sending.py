"""The send loop with a fake provider and gate (the real ones are covered in integration)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable

import pytest

from schemas.common import Channel, ErrorCategory, ItemStatus, OperationType
from schemas.link_wire import LinkSendSpec, PreparedRecipient
from schemas.messages import ItemBatch
from streams.pacing import Pacer, TokenBucket
from streams.providers.base import Delivery, ProviderError
from streams.sending import send_link_batch

OP = "bulk_" + "c" * 32


class FakeProvider:
    channel = "SMS"

    def __init__(self, script: dict[str, list[ProviderError | None]] | None = None) -> None:
        self.script = script or {}
        self.calls: dict[str, int] = defaultdict(int)

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery:
        self.calls[to] += 1
        outcomes = self.script.get(to, [])
        if outcomes:
            error = outcomes.pop(0)
            if error is not None:
                raise error
        await asyncio.sleep(0)
        return Delivery(f"id-{idempotency_key}")

    async def close(self) -> None:
        pass


class FakeGate:
    def __init__(self, budget_items: int | None = None) -> None:
        self.reason: str | None = None
        self.budget_items = budget_items

    def stop_reason(self, operation_id: str) -> str | None:
        return self.reason

    def stop(self, operation_id: str, reason: str) -> None:
        self.reason = self.reason or reason

    def reserve(self, batch: ItemBatch, wanted: int) -> int:
        if self.budget_items is None:
            return wanted
        allowed = min(wanted, self.budget_items)
        self.budget_items -= allowed
        return allowed


def batch(n: int, **spec: object) -> ItemBatch:
    options = {
        "channel": Channel.SMS,
        "subject": "s",
        "batch_size": n,
        "max_concurrency": 4,
        "retry_attempts": 2,
        "retry_delay_seconds": 1.0,
        "price_per_message": 0.05,
        "recipient_chunks": 1,
        **spec,
    }
    return ItemBatch(
        operation_id=OP,
        sponsor_id=1,
        operation_type=OperationType.LINK_SEND,
        batch_index=0,
        start_index=0,
        count=n,
        link=LinkSendSpec.model_validate(options),
        recipients=[
            PreparedRecipient(index=i, name=f"n{i}", address=f"+9053200000{i:02d}", message="hi")
            for i in range(n)
        ],
    )


def transient() -> ProviderError:
    return ProviderError("PROVIDER_503", "down", ErrorCategory.PROCESSING, retryable=True)


def permanent() -> ProviderError:
    return ProviderError("SMS_21211", "bad number", ErrorCategory.VALIDATION, retryable=False)


def throttled() -> ProviderError:
    return ProviderError(
        "RATE_LIMITED",
        "slow down",
        ErrorCategory.PROCESSING,
        retryable=True,
        retry_after=0.01,
        rate_limited=True,
    )


def pacer() -> Pacer:
    return Pacer({"SMS": 100_000}, {"SMS": 100_000})


async def run(b: ItemBatch, provider: FakeProvider, gate: FakeGate, sleeps: list[float]) -> list:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    result = await send_link_batch(
        b, provider=provider, pacer=pacer(), gate=gate, in_flight=asyncio.Semaphore(4), sleep=sleep
    )
    return list(zip(result.statuses, result.attempts, strict=True)), result


async def test_transient_errors_back_off_exponentially_then_succeed() -> None:
    provider = FakeProvider({"+905320000000": [transient(), transient()]})
    sleeps: list[float] = []
    outcomes, result = await run(batch(1), provider, FakeGate(), sleeps)
    assert outcomes == [(ItemStatus.SUCCESS, 3)]
    assert sleeps == [1.0, 2.0]
    assert result.results == [f"id-{OP}:0"]


async def test_retries_run_out_and_the_item_fails_retryable() -> None:
    provider = FakeProvider({"+905320000000": [transient()] * 5})
    outcomes, result = await run(batch(1), provider, FakeGate(), [])
    assert outcomes == [(ItemStatus.FAILED, 3)]
    error = result.errors[0]
    assert (error.error_code, error.is_retryable, error.retry_count) == ("PROVIDER_503", True, 2)


async def test_permanent_errors_fail_at_once() -> None:
    provider = FakeProvider({"+905320000000": [permanent()]})
    outcomes, result = await run(batch(1), provider, FakeGate(), [])
    assert outcomes == [(ItemStatus.FAILED, 1)]
    assert result.errors[0].error_category is ErrorCategory.VALIDATION


async def test_throttling_does_not_use_up_attempts() -> None:
    provider = FakeProvider({"+905320000000": [throttled()] * 5})
    outcomes, _ = await run(batch(1, retry_attempts=0), provider, FakeGate(), [])
    assert outcomes == [(ItemStatus.SUCCESS, 1)]
    assert provider.calls["+905320000000"] == 6


async def test_stop_on_first_error_skips_what_has_not_started() -> None:
    provider = FakeProvider({"+905320000000": [permanent()]})
    gate = FakeGate()
    b = batch(10, max_concurrency=1, stop_on_first_error=True)
    result = await send_link_batch(
        b, provider=provider, pacer=pacer(), gate=gate, in_flight=asyncio.Semaphore(1)
    )
    assert result.statuses[0] is ItemStatus.FAILED
    assert set(result.statuses[1:]) == {ItemStatus.SKIPPED}
    assert gate.reason == "STOP_ON_FIRST_ERROR"
    assert sum(provider.calls.values()) == 1


async def test_budget_allows_only_what_it_covers() -> None:
    gate = FakeGate(budget_items=3)
    outcomes, result = await run(batch(5), FakeProvider(), gate, [])
    assert [s for s, _ in outcomes].count(ItemStatus.SUCCESS) == 3
    assert [e.error_code for e in result.errors] == ["BUDGET_EXCEEDED"] * 2
    assert result.errors[0].error_category is ErrorCategory.BUSINESS
    assert gate.reason == "BUDGET_EXCEEDED"


async def test_items_skipped_by_validation_are_not_sent() -> None:
    b = batch(2)
    from schemas.common import ItemError

    assert b.recipients is not None
    b.recipients[1] = b.recipients[1].model_copy(
        update={
            "skip": ItemError(
                item_index=1,
                item_id=f"{OP}:1",
                error_code="INVALID_PHONE",
                error_message="x",
                error_category=ErrorCategory.VALIDATION,
            )
        }
    )
    provider = FakeProvider()
    outcomes, _ = await run(b, provider, FakeGate(), [])
    assert [s for s, _ in outcomes] == [ItemStatus.SUCCESS, ItemStatus.SKIPPED]
    assert sum(provider.calls.values()) == 1


def fake_time() -> tuple[list[float], Callable[[float], Awaitable[None]]]:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    return now, sleep


async def test_token_bucket_holds_its_rate() -> None:
    now, sleep = fake_time()
    bucket = TokenBucket(rate=10, burst=1, clock=lambda: now[0], sleep=sleep)
    for _ in range(21):
        await bucket.acquire()
    assert now[0] == pytest.approx(2.0)  # 1 token at start, then 10 per second


async def test_tokens_earned_while_the_loop_was_busy_reach_their_waiters_together() -> None:
    """A busy event loop wakes the bucket late; what it earned meanwhile goes out in one turn
    of the loop, in arrival order, not one waiter per turn (which capped a 500/s sender at
    the loop's turns per second)."""
    now = [0.0]

    async def late_sleep(seconds: float) -> None:
        now[0] += seconds + 0.2
        await asyncio.sleep(0)  # other tasks run meanwhile

    bucket = TokenBucket(rate=100, burst=100, clock=lambda: now[0], sleep=late_sleep)
    await bucket.acquire()  # the token it starts with
    served: list[int] = []

    async def send(n: int) -> None:
        await bucket.acquire()
        served.append(n)

    tasks = [asyncio.create_task(send(n)) for n in range(30)]
    for _ in range(6):  # turns of the loop
        await asyncio.sleep(0)
    assert served == list(range(30))
    await asyncio.gather(*tasks)
    assert now[0] == pytest.approx(0.42)  # two late wakes of 0.21 s: 21 tokens each


async def test_a_cancelled_wait_takes_no_token_from_the_others() -> None:
    now, sleep = fake_time()
    bucket = TokenBucket(rate=10, burst=1, clock=lambda: now[0], sleep=sleep)
    await bucket.acquire()
    gone = asyncio.ensure_future(bucket.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    await bucket.acquire()
    assert now[0] == pytest.approx(0.1)  # the next token, not the one after it


async def test_pause_blocks_the_bucket_for_retry_after() -> None:
    now, sleep = fake_time()
    bucket = TokenBucket(rate=1000, clock=lambda: now[0], sleep=sleep)
    bucket.pause(1.5)
    await bucket.acquire()
    assert now[0] >= 1.5
