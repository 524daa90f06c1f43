"""Token buckets that hold sends to each provider's pace.

One bucket per sender (the provider account a channel sends from) and one per
sponsor and channel. A sponsor's operations all run on the worker that owns the sponsor's
partition, so its bucket here is exact. Every worker sends for every sender, so a worker's
sender bucket holds the share of the sender's rate that its item partitions are of all of
them (:meth:`Pacer.follow_assignment`, on every rebalance): however many workers run, their
rates add up to the sender's at most. A provider's 429 with ``Retry-After`` pauses the whole
sender bucket.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

# How often a bucket with no rate (a worker owning no partitions) looks again.
_IDLE_RECHECK_SECONDS = 0.1


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``acquire`` waits for one.

    A rate of 0 gives no tokens until :meth:`set_rate` gives a positive one.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must not be negative")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0 if rate else 0.0
        self._updated = clock()
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._dispatcher: asyncio.Future[None] | None = None

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def take(self, now: float) -> float:
        """Take a token if one is there (returns 0), else how long until one will be."""
        if now < self._paused_until:
            return self._paused_until - now
        self._refill(now)
        if self._tokens >= 1 - 1e-9:  # float sums land a hair under 1
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self.rate if self.rate else _IDLE_RECHECK_SECONDS

    async def acquire(self) -> None:
        """Wait for a token; first come, first served.

        Waiters queue up and one dispatcher hands tokens out: every token earned by the time
        it wakes goes to a waiter at once. (A lock passed from waiter to waiter gave at most
        one token per turn of a busy event loop: 400 sends/s where 500 were allowed.)
        """
        if not self._waiters and self.take(self._clock()) == 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.ensure_future(self._dispatch())
        await waiter

    async def _dispatch(self) -> None:
        waiters = self._waiters
        while waiters:
            if waiters[0].done():  # its acquire was cancelled
                waiters.popleft()
                continue
            wait = self.take(self._clock())
            if wait > 0:
                await self._sleep(wait)
            else:
                waiters.popleft().set_result(None)

    def set_rate(self, rate: float) -> None:
        """From now on ``rate`` per second (tokens saved so far were earned at the old one)."""
        if rate < 0:
            raise ValueError("rate must not be negative")
        self._refill(self._clock())
        self.rate = rate
        self.burst = max(1.0, rate / 10)
        self._tokens = min(self._tokens, self.burst) if rate else 0.0

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a provider said Retry-After); saved tokens are lost."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._tokens = 0.0
        self._updated = max(now, self._paused_until)


class Pacer:
    """The buckets a send must pass: its operation's own (if it has a rate), its sponsor's
    for that channel and its sender's."""

    def __init__(
        self,
        sender_rates: dict[str, float],
        sponsor_rates: dict[str, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sender_rates = sender_rates
        self._sponsor_rates = sponsor_rates
        self._clock = clock
        self._senders: dict[str, TokenBucket] = {}
        self._sponsors: dict[tuple[int, str], TokenBucket] = {}
        self._operations: dict[str, TokenBucket] = {}
        # The share of each sender's rate this worker may use: its item partitions over all.
        self.share = 1.0

    def sender(self, channel: str) -> TokenBucket:
        bucket = self._senders.get(channel)
        if bucket is None:
            rate = self._sender_rates[channel] * self.share
            bucket = self._senders[channel] = TokenBucket(rate, clock=self._clock)
        return bucket

    def follow_assignment(self, owned: int, total: int) -> dict[str, float]:
        """This worker now owns ``owned`` of the ``total`` item partitions: hold each sender
        to that share of its rate (none while it owns none, as between a revocation and the
        next assignment). Returns the sender rates now in force."""
        if not 0 <= owned <= total or total < 1:
            raise ValueError(f"owned {owned} of {total} partitions")
        self.share = owned / total
        for channel, bucket in self._senders.items():
            bucket.set_rate(self._sender_rates[channel] * self.share)
        return {channel: rate * self.share for channel, rate in self._sender_rates.items()}

    def sponsor(self, sponsor_id: int, channel: str) -> TokenBucket:
        key = (sponsor_id, channel)
        bucket = self._sponsors.get(key)
        if bucket is None:
            bucket = self._sponsors[key] = TokenBucket(
                self._sponsor_rates[channel], clock=self._clock
            )
        return bucket

    def set_operation_rate(self, operation_id: str, rate: float | None) -> None:
        """Hold one operation to ``rate`` sends per second too (None: only the shared limits)."""
        if rate is None:
            self._operations.pop(operation_id, None)
        elif operation_id in self._operations:
            self._operations[operation_id].set_rate(rate)
        else:
            self._operations[operation_id] = TokenBucket(rate, clock=self._clock)

    def operation_rate(self, operation_id: str) -> float | None:
        bucket = self._operations.get(operation_id)
        return None if bucket is None else bucket.rate

    async def acquire(self, sponsor_id: int, channel: str, operation_id: str | None = None) -> None:
        own = self._operations.get(operation_id) if operation_id else None
        if own is not None:
            await own.acquire()
        await self.sponsor(sponsor_id, channel).acquire()
        await self.sender(channel).acquire()

    def pause_sender(self, channel: str, seconds: float) -> None:
        self.sender(channel).pause(seconds)


class AdjustableLimit:
    """A semaphore whose size can change while it is held (a rethrottled ``maxConcurrency``):
    growing lets waiters in at once; shrinking lets no new one in until enough have left.

    Waiters queue in arrival order and a leaving holder hands its slot to exactly one of them.
    (A condition variable woken with ``notify_all`` on every exit, as before, woke all of a
    batch's few hundred waiters per send only for one to get in: it cost a link-sending worker
    a fifth of its event loop.)"""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        if self.held < self.size and not self._waiters:
            self.held += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted, then cancelled: pass it on
                self.held -= 1
                self._admit()
            raise

    async def __aexit__(self, *_: object) -> None:
        self.held -= 1
        self._admit()

    async def resize(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._admit()

    def _admit(self) -> None:
        """Hand free slots to the longest waiters; a cancelled waiter is dropped on the way."""
        while self.held < self.size and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.held += 1
                waiter.set_result(None)
