"""The sink's batching: full batches at once, one batch per linger period otherwise, reading
on while a batch is consumed, and nothing lost, reordered or read far ahead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streams.batching import batched

DEADLINE = 5.0
_END = object()


class Feed:
    """A source the test feeds by hand; counts what the batcher pulled from it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.pulled = 0
        self._pull = asyncio.Condition()

    def put(self, *items: object) -> None:
        for item in items:
            self.queue.put_nowait(item)

    def close(self) -> None:
        self.queue.put_nowait(_END)

    async def items(self) -> AsyncIterator[object]:
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            self.pulled += 1
            async with self._pull:
                self._pull.notify_all()
            yield item

    async def pulled_at_least(self, n: int) -> None:
        async with self._pull:
            await asyncio.wait_for(self._pull.wait_for(lambda: self.pulled >= n), DEADLINE)


async def next_batch(batches: AsyncIterator[list[object]]) -> list[object]:
    return await asyncio.wait_for(anext(batches), DEADLINE)


async def test_a_first_item_goes_at_once_a_full_batch_too_and_the_rest_waits_its_turn() -> None:
    feed = Feed()
    batches = batched(feed.items(), max_size=3, linger=60.0)
    feed.put(1)
    assert await next_batch(batches) == [1]  # after a quiet spell: no linger
    feed.put(2, 3, 4, 5)
    assert await next_batch(batches) == [2, 3, 4]  # full: no linger either
    waiting = asyncio.ensure_future(anext(batches))
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done  # [5] waits for the period (60 s) or more items
    feed.put(6, 7)
    assert await asyncio.wait_for(waiting, DEADLINE) == [5, 6, 7]
    feed.put(8)
    feed.close()
    assert await next_batch(batches) == [8]  # the end does not wait for the period
    with pytest.raises(StopAsyncIteration):
        await next_batch(batches)


async def test_reading_goes_on_while_a_batch_is_consumed_but_only_one_batch_ahead() -> None:
    feed = Feed()
    batches = batched(feed.items(), max_size=2, linger=0.0)
    feed.put(*range(10))
    assert await next_batch(batches) == [0, 1]
    # The consumer is "storing" batch [0, 1]: the next batch is read meanwhile...
    await feed.pulled_at_least(4)
    await asyncio.sleep(0.05)  # give the reader every chance to run further ahead
    # ...but no further than one batch in the queue and one item waiting to be put.
    assert feed.pulled <= 5
    assert await next_batch(batches) == [2, 3]
    rest = [await next_batch(batches) for _ in range(3)]
    assert rest == [[4, 5], [6, 7], [8, 9]]
    await batches.aclose()  # type: ignore[attr-defined]


async def test_a_slow_consumer_gets_what_arrived_meanwhile_without_waiting_the_period() -> None:
    feed = Feed()
    batches = batched(feed.items(), max_size=100, linger=0.3)
    feed.put("a")
    assert await next_batch(batches) == ["a"]
    feed.put("b", "c")
    await feed.pulled_at_least(3)
    await asyncio.sleep(0.35)  # the consumer took longer than the period to store ["a"]
    loop = asyncio.get_running_loop()
    asked = loop.time()
    assert await next_batch(batches) == ["b", "c"]
    assert loop.time() - asked < 0.2


async def test_the_sources_error_reaches_the_consumer_after_what_came_before() -> None:
    feed = Feed()
    batches = batched(feed.items(), max_size=5, linger=0.0)
    feed.put(1, RuntimeError("broker gone"))
    assert await next_batch(batches) == [1]
    with pytest.raises(RuntimeError, match="broker gone"):
        await next_batch(batches)


async def test_closing_the_batches_stops_reading_the_source() -> None:
    feed = Feed()
    batches = batched(feed.items(), max_size=2, linger=0.0)
    feed.put(1)
    assert await next_batch(batches) == [1]
    await batches.aclose()  # type: ignore[attr-defined]
    feed.put(2, 3)
    await asyncio.sleep(0.05)
    assert feed.pulled == 1
