"""How a job batch reaches the system that does the work, and how its answer comes back.

An executor hands out one attempt of a batch and returns the answer, the failure of the whole
attempt, or ``None`` when nothing came by the batch's deadline. What the answer means for each
item is :mod:`streams.jobs.running`'s business (:mod:`streams.jobs.http` is the HTTP one).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from core.topics import sponsor_key
from schemas.common import ErrorCategory
from schemas.jobs import JobBatch, JobResult
from streams.jobs.waits import JobWaits


class Outbox(Protocol):
    async def send(self, *, key: bytes | None, value: bytes | None) -> object: ...


@dataclass(frozen=True)
class AttemptFailure:
    """An attempt that failed as a whole (the handler refused the request, answered garbage,
    or could not be reached): every item it carried fails with this error."""

    code: str
    message: str
    category: ErrorCategory
    retryable: bool


class Executor(Protocol):
    async def run(self, job: JobBatch) -> JobResult | AttemptFailure | None:
        """The answer, a failure of the whole attempt, or None: nothing by the deadline."""
        ...


class KafkaExecutor:
    """The owning system's workers: the batch goes to the type's topic, keyed by sponsor, and
    the answer comes on the job-results topic (:mod:`streams.agents.job_results`)."""

    def __init__(self, topic: Outbox, waits: JobWaits) -> None:
        self._topic = topic
        self._waits = waits

    async def run(self, job: JobBatch) -> JobResult | None:
        with self._waits.expect(job) as (answer, first):
            if first:
                await self._topic.send(
                    key=sponsor_key(job.sponsor_id), value=job.model_dump_json().encode()
                )
            left = (job.deadline - datetime.now(UTC)).total_seconds()
            try:
                return await asyncio.wait_for(answer, max(0.0, left))
            except TimeoutError:
                return None
