"""Token buckets that hold sends to each provider's pace.

One bucket per sender (the provider account a channel sends from) and one per
sponsor and channel. A sponsor's operations all run on the worker that owns the sponsor's
partition, so its bucket here is exact; the sender bucket is exact while one worker sends
for that sender (several workers sharing a sender split its rate between them: configure
``rate / workers``). A provider's 429 with ``Retry-After`` pauses the whole sender bucket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``acquire`` waits for one."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await self._sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= 1 - 1e-9:  # float sums land a hair under 1
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a provider said Retry-After); saved tokens are lost."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._tokens = 0.0
        self._updated = max(now, self._paused_until)


class Pacer:
    """The buckets a send must pass: its sender's and its sponsor's for that channel."""

    def __init__(self, sender_rates: dict[str, float], sponsor_rates: dict[str, float]) -> None:
        self._sender_rates = sender_rates
        self._sponsor_rates = sponsor_rates
        self._senders: dict[str, TokenBucket] = {}
        self._sponsors: dict[tuple[int, str], TokenBucket] = {}

    def sender(self, channel: str) -> TokenBucket:
        bucket = self._senders.get(channel)
        if bucket is None:
            bucket = self._senders[channel] = TokenBucket(self._sender_rates[channel])
        return bucket

    def sponsor(self, sponsor_id: int, channel: str) -> TokenBucket:
        key = (sponsor_id, channel)
        bucket = self._sponsors.get(key)
        if bucket is None:
            bucket = self._sponsors[key] = TokenBucket(self._sponsor_rates[channel])
        return bucket

    async def acquire(self, sponsor_id: int, channel: str) -> None:
        await self.sponsor(sponsor_id, channel).acquire()
        await self.sender(channel).acquire()

    def pause_sender(self, channel: str, seconds: float) -> None:
        self.sender(channel).pause(seconds)
