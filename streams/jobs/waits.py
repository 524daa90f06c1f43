"""The answers this process waits for: one per job batch handed out, by attempt.

A :class:`~schemas.jobs.JobResult` is delivered only to the attempt that asked for it, by the
sponsor and job type it was asked for. Anything else is ignored and counted: a late answer
(its attempt timed out and was given up), a second copy of one already taken, an answer for an
operation or batch unknown here, or one from another sponsor's or type's worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from schemas.jobs import JobBatch, JobResult

WaitKey = tuple[str, int, int]


def key_of(message: JobBatch | JobResult) -> WaitKey:
    return (message.operation_id, message.batch_index, message.attempt)


@dataclass
class _Wait:
    batch: JobBatch
    answer: asyncio.Future[JobResult]
    waiters: int = 0


@dataclass
class JobWaits:
    _waits: dict[WaitKey, _Wait] = field(default_factory=dict)

    @contextmanager
    def expect(self, batch: JobBatch) -> Iterator[tuple[asyncio.Future[JobResult], bool]]:
        """The future ``batch``'s answer lands in while the block runs, and whether this is
        the first wait for it. A replay of a batch in flight (a chunk or an item batch
        delivered again) shares the wait: the batch is handed out once."""
        key = key_of(batch)
        wait = self._waits.get(key)
        first = wait is None or wait.answer.done()
        if wait is None or first:
            wait = self._waits[key] = _Wait(batch, asyncio.get_running_loop().create_future())
        wait.waiters += 1
        try:
            yield wait.answer, first
        finally:
            wait.waiters -= 1
            if not wait.waiters and self._waits.get(key) is wait:
                del self._waits[key]

    def deliver(self, result: JobResult) -> bool:
        """Hand ``result`` to the attempt waiting for it; False if none is (ignored)."""
        wait = self._waits.get(key_of(result))
        if wait is None or wait.answer.done():
            return False
        if (result.sponsor_id, result.job_type) != (wait.batch.sponsor_id, wait.batch.job_type):
            return False
        wait.answer.set_result(result)
        return True

    def __len__(self) -> int:
        return len(self._waits)
