"""A worker for a job type, in a few lines: the owning system's side of the Kafka executor.

    from bulkops.jobs import JobWorker, PermanentError

    async def update_status(item, batch):
        ticket = await tickets.get(item.payload["ticketId"])
        if not ticket.may_change(batch.sponsor_id):
            raise PermanentError("FORBIDDEN", "Insufficient permissions for this ticket")
        await ticket.set_status(batch.data["status"], idempotency_key=item.item_id)
        return {"status": batch.data["status"]}

    JobWorker("ticket:update_status", bootstrap="127.0.0.1:9092", prefix="bulkops",
              handler=update_status).run_forever()

The worker consumes the type's batches (``<prefix>.jobs.<system>.<action>``) in a consumer
group of its own, runs the handler on the items of a batch at most ``concurrency`` at a time,
answers with one :class:`~schemas.jobs.JobResult` on ``<prefix>.job-results`` and only then
commits the batch. Delivery is at least once: after a crash a batch can come again, so a
handler uses ``item.item_id`` as its idempotency key. A handler raises
:class:`PermanentError` for a failure that trying again cannot fix (refused, not found),
:class:`RetryableError` for one that it may (a timeout, a lock); any other exception counts as
retryable. Batches whose deadline has passed are skipped (Bulkops has counted them as timed
out), and so are messages that are not batches (logged, the stream goes on). The worker also
reads ``<prefix>.job-control``: a batch of a cancelled operation that it has not started is
answered with every item ``Skipped`` (``CANCELLED``), without running the handler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from pydantic import ValidationError

from core.kafkalog import client_logger
from core.topics import Topics
from schemas.common import ErrorCategory, ItemStatus
from schemas.jobs import JobBatch, JobControl, JobItem, JobItemOutcome, JobResult

log = logging.getLogger("bulkops.jobs")

#: Cancelled operations a worker remembers (their batches are dropped, not run).
MAX_CANCELLED = 100_000

ItemHandler = Callable[[JobItem, JobBatch], Awaitable[dict[str, Any] | None]]
BatchHandler = Callable[[JobBatch], Awaitable[list[JobItemOutcome]]]


class JobError(Exception):
    """A failed item: ``code`` and ``message`` reach the operation's item errors."""

    retryable = False
    category = ErrorCategory.BUSINESS

    def __init__(self, code: str, message: str, category: ErrorCategory | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        if category is not None:
            self.category = category


class PermanentError(JobError):
    """Trying again cannot help (refused, invalid, not found)."""


class RetryableError(JobError):
    """Trying again may help (a timeout, a lock, a dependency down)."""

    retryable = True
    category = ErrorCategory.PROCESSING


@dataclass
class JobWorker:
    """Runs ``handler`` (per item) or ``batch_handler`` (per batch) for one job type."""

    job_type: str
    bootstrap: str
    prefix: str = "bulkops"
    handler: ItemHandler | None = None
    batch_handler: BatchHandler | None = None
    concurrency: int = 8
    group_id: str | None = None
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    poll_seconds: float = 0.5
    # A worker that died without leaving its group gives its partitions up after this long.
    session_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        if self.concurrency < 1:
            raise ValueError("concurrency is at least 1")
        topics = Topics(self.prefix)
        self.topic = topics.jobs(self.job_type).name
        self.results_topic = topics.job_results.name
        self.control_topic = topics.job_control.name
        self._stop = asyncio.Event()
        # Operations cancelled (from the job-control topic), the newest MAX_CANCELLED of them.
        self._cancelled: OrderedDict[str, None] = OrderedDict()

    def is_cancelled(self, operation_id: str) -> bool:
        return operation_id in self._cancelled

    def mark_cancelled(self, operation_id: str) -> None:
        """Drop the operation's batches not started from now on."""
        self._cancelled[operation_id] = None
        self._cancelled.move_to_end(operation_id)
        while len(self._cancelled) > MAX_CANCELLED:
            self._cancelled.popitem(last=False)

    async def handle(self, batch: JobBatch) -> JobResult:
        """The batch's result: every item's outcome, the handler's exceptions mapped (every
        item ``Skipped``/``CANCELLED`` for a cancelled operation: the handler never runs)."""
        if batch.operation_id in self._cancelled:
            outcomes = [_cancelled(item) for item in batch.items]
        elif self.batch_handler is not None:
            outcomes = await self._whole(batch)
        else:
            limit = asyncio.Semaphore(self.concurrency)

            async def one(item: JobItem) -> JobItemOutcome:
                async with limit:
                    return await self._item(item, batch)

            outcomes = list(await asyncio.gather(*(one(item) for item in batch.items)))
        return JobResult(
            operation_id=batch.operation_id,
            sponsor_id=batch.sponsor_id,
            job_type=batch.job_type,
            batch_index=batch.batch_index,
            attempt=batch.attempt,
            worker_id=self.worker_id,
            outcomes=outcomes,
            completed_at=datetime.now(UTC),
        )

    async def _whole(self, batch: JobBatch) -> list[JobItemOutcome]:
        """The batch handler's outcomes; if it raises (or does not answer every item once),
        every item fails with that error."""
        assert self.batch_handler is not None
        try:
            outcomes = await self.batch_handler(batch)
            _check_answers_every_item(batch, outcomes)
        except JobError as exc:
            return [
                _failed(i, exc.code, exc.message, exc.category, exc.retryable) for i in batch.items
            ]
        except Exception as exc:
            log.exception("job %s batch %d: handler raised", batch.operation_id, batch.batch_index)
            return [
                _failed(i, "WORKER_EXCEPTION", repr(exc), ErrorCategory.SYSTEM, True)
                for i in batch.items
            ]
        return outcomes

    async def _item(self, item: JobItem, batch: JobBatch) -> JobItemOutcome:
        assert self.handler is not None
        try:
            result = await self.handler(item, batch)
        except JobError as exc:
            return _failed(item, exc.code, exc.message, exc.category, exc.retryable)
        except Exception as exc:  # a handler's bug or a dependency's: worth another try
            log.exception("job %s item %s: handler raised", batch.operation_id, item.item_id)
            return _failed(item, "WORKER_EXCEPTION", repr(exc), ErrorCategory.SYSTEM, True)
        return JobItemOutcome(
            index=item.index, item_id=item.item_id, status=ItemStatus.SUCCESS, result_data=result
        )

    def stop(self) -> None:
        """Finish the batch at hand, answer it, and return from :meth:`run` (call it on the
        loop that runs the worker: a signal handler, or ``loop.call_soon_threadsafe``)."""
        self._stop.set()

    async def run(self, *, max_batches: int | None = None) -> int:
        """Consume and answer batches until :meth:`stop` (or ``max_batches`` answered);
        returns how many were answered."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group_id or f"{self.prefix}-jobs-{self.job_type}",
                "session.timeout.ms": int(self.session_timeout_seconds * 1000),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "logger": client_logger("jobs"),
            }
        )
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",  # the same partition as Bulkops' own keys
                "logger": client_logger("jobs"),
            }
        )
        consumer.subscribe([self.topic])
        control = self._control_consumer()
        answered = 0
        log.info("job worker %s: consuming %s", self.worker_id, self.topic)
        try:
            while not self._stop.is_set() and (max_batches is None or answered < max_batches):
                self._read_control(control)
                message = await asyncio.to_thread(consumer.poll, self.poll_seconds)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("job worker %s: %s", self.worker_id, error)
                    continue
                if await self._consume(message, producer):
                    answered += 1
                self._commit(consumer, message)
        finally:
            consumer.close()
            control.close()
            producer.flush(10)
        return answered

    def _control_consumer(self) -> Consumer:
        """Every partition of the job-control topic from its start (no group: each worker
        reads all of it; compaction keeps it to one notice per cancelled operation)."""
        control = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.prefix}-jobs-control",  # never joined: partitions assigned
                "enable.auto.commit": False,
                "logger": client_logger("jobs"),
            }
        )
        described = control.list_topics(self.control_topic, timeout=10).topics[self.control_topic]
        if described.error is not None:
            log.warning(
                "job worker %s: no %s (%s): cancels reach it only through deadlines",
                self.worker_id,
                self.control_topic,
                described.error,
            )
            return control
        control.assign(
            [TopicPartition(self.control_topic, p, OFFSET_BEGINNING) for p in described.partitions]
        )
        return control

    def _read_control(self, control: Consumer) -> None:
        """Take the cancels that arrived (without waiting for more)."""
        while messages := control.consume(num_messages=500, timeout=0):
            for message in messages:
                if message.error() is not None or not message.value():
                    continue
                try:
                    notice = JobControl.model_validate_json(message.value() or b"")
                except ValidationError:
                    log.warning("job worker %s: a malformed job-control message", self.worker_id)
                    continue
                if notice.job_type == self.job_type:
                    self.mark_cancelled(notice.operation_id)

    def _commit(self, consumer: Consumer, message: Message) -> None:
        """Commit past ``message``; if its partition moved to another worker meanwhile (a
        rebalance), the new owner gets the batch again, which at-least-once allows."""
        try:
            consumer.commit(message=message, asynchronous=False)
        except KafkaException as exc:
            log.warning(
                "job worker %s: offset %s of %s[%s] not committed (%s); it may come again",
                self.worker_id,
                message.offset(),
                message.topic(),
                message.partition(),
                exc,
            )

    async def _consume(self, message: Message, producer: Producer) -> bool:
        """Answer one message; False if it was not a batch to answer."""
        try:
            batch = JobBatch.model_validate_json(message.value() or b"")
        except ValidationError as exc:
            log.error(
                "job worker %s: skipping a malformed batch at %s[%s]@%s: %s",
                self.worker_id,
                message.topic(),
                message.partition(),
                message.offset(),
                exc.errors(include_url=False)[:3],
            )
            return False
        if batch.deadline <= datetime.now(UTC):
            log.info(
                "job %s batch %d attempt %d: deadline passed, skipped",
                batch.operation_id,
                batch.batch_index,
                batch.attempt,
            )
            return False
        result = await self.handle(batch)
        await _produce(producer, self.results_topic, message.key(), result)
        return True

    def run_forever(self) -> None:
        """Run until SIGINT or SIGTERM, then finish the batch at hand and return."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
            await self.run()

        asyncio.run(main())


def _failed(
    item: JobItem, code: str, message: str, category: ErrorCategory, retryable: bool
) -> JobItemOutcome:
    return JobItemOutcome(
        index=item.index,
        item_id=item.item_id,
        status=ItemStatus.FAILED,
        error_code=code[:100],
        error_message=message[:2000],
        error_category=category,
        is_retryable=retryable,
    )


def _cancelled(item: JobItem) -> JobItemOutcome:
    return JobItemOutcome(
        index=item.index,
        item_id=item.item_id,
        status=ItemStatus.SKIPPED,
        error_code="CANCELLED",
        error_message="Skipped: the operation was cancelled before this batch started",
        error_category=ErrorCategory.BUSINESS,
    )


def _check_answers_every_item(batch: JobBatch, outcomes: list[JobItemOutcome]) -> None:
    wanted = sorted((i.index, i.item_id) for i in batch.items)
    got = sorted((o.index, o.item_id) for o in outcomes)
    if wanted != got:
        raise ValueError(
            f"a batch handler answers each of the batch's {len(wanted)} items once "
            f"(got {len(got)} outcomes, not matching)"
        )


async def _produce(producer: Producer, topic: str, key: bytes | None, result: JobResult) -> None:
    """Send ``result`` and wait until the broker has it (the batch is committed after)."""
    reports: list[KafkaError | None] = []
    producer.produce(
        topic,
        key=key,
        value=result.model_dump_json().encode(),
        on_delivery=lambda error, _: reports.append(error),
    )
    left = await asyncio.to_thread(producer.flush, 60)
    if left or not reports:
        raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "result not delivered"))
    if reports[0] is not None:
        raise KafkaException(reports[0])
