"""How a job batch reaches the system that does the work, and how its answer comes back.

An executor hands out one attempt of a batch and returns the answer, or ``None`` when none
came by the batch's deadline. What the answer means for each item is
:mod:`streams.jobs.running`'s business.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

from core.topics import sponsor_key
from schemas.jobs import JobBatch, JobResult
from streams.jobs.waits import JobWaits


class Outbox(Protocol):
    async def send(self, *, key: bytes | None, value: bytes | None) -> object: ...


class Executor(Protocol):
    async def run(self, job: JobBatch) -> JobResult | None: ...


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
