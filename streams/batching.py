"""Batches for the sink: as large as the input allows, at most one insert per linger period.

Faust's ``take_events(max, within)`` stops reading while a batch is being stored and then
waits the whole ``within`` for the buffer to fill; below ``max`` messages in flight (a release
window is smaller) every store was followed by an idle ``within``, and nothing was read while
ClickHouse took the rows. :func:`batched` keeps reading while the consumer works on a batch,
and starts the next batch at once if its linger period has already passed: a store that takes
longer than the period is followed by the next straight away, with what arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def batched(source: AsyncIterator[T], max_size: int, linger: float) -> AsyncIterator[list[T]]:
    """Lists of up to ``max_size`` items of ``source``, in order.

    A batch is handed out when it is full, or ``linger`` seconds after the previous one was
    (a first item after a quiet spell goes out at once). At most one full batch is read
    ahead of the one being consumed, so memory stays bounded by the consumer's pace.
    """
    queue: asyncio.Queue[T] = asyncio.Queue(maxsize=max_size)
    ended = asyncio.Event()

    async def read() -> None:
        try:
            async for item in source:
                await queue.put(item)
        finally:
            ended.set()

    reader = asyncio.create_task(read(), name="batched-reader")
    loop = asyncio.get_running_loop()
    last = loop.time() - linger
    try:
        while True:
            first = await _next(queue, ended, reader)
            if first is None:
                return
            batch = [first[0]]
            deadline = last + linger
            while len(batch) < max_size:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0 or ended.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
            last = loop.time()
            yield batch
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _next(
    queue: asyncio.Queue[T], ended: asyncio.Event, reader: asyncio.Task[None]
) -> tuple[T] | None:
    """The next item (in a 1-tuple, so any value fits), or None once the source is done."""
    while queue.empty():
        if ended.is_set():
            reader.result()  # the source's own error, if it failed
            return None
        getter = asyncio.ensure_future(queue.get())
        stopped = asyncio.ensure_future(ended.wait())
        done, _ = await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if getter in done:
            return (getter.result(),)
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
    return (queue.get_nowait(),)
