"""Processor processes: batches that need nothing but themselves, on the other cores.

Embedded chDB lets one process own the data, so the worker, its tables and the store live
in one Python process. Batches of a *stateless* kind (code generation: the batch and the
minter's secret are all it takes) need none of that: when the worker runs processors
(``BULKOPS_PROCESSORS``) it hands them to the work topic instead of the items topic, the
processors share that topic as one consumer group, and each result goes to the results topic,
where the worker stores and counts it as if it had made it itself.

Delivery is at-least-once: a round of batches is consumed and processed, its results and
holds are acknowledged by the broker, then its offsets are committed. A processor killed
in between does the round again; the worker counts each batch once (its bitmap) and the
store keeps each item once.

Cancels and pauses come from the control topic (:mod:`streams.control_view`), read up to its
end before each batch, so no item starts after a cancel was answered. A batch of a paused
operation goes back to the worker to be held, as from the worker's own process agent.

A processor started by a worker (``serve``, ``up``, ``worker``) stops when that worker is
gone, so a killed worker leaves none behind; :class:`bulkops.processes.Processors` starts
them and starts a dead one again.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import BaseModel, ValidationError

from core.kafkalog import client_logger
from core.producing import producer_config
from core.settings import WorkerSettings
from core.topics import Topics, sponsor_key
from schemas.messages import BatchHold, ItemBatch, ResultBatch
from streams.codes import CodeMinter
from streams.context import InvalidMessage, check_sponsor_key, dead_letter_of
from streams.control_view import ControlFollower, ControlView
from streams.kinds import kind_of
from streams.sending import skip_batch

log = logging.getLogger("bulkops.processor")

#: Batches taken per round (one flush and one commit each).
ROUND = 16
#: How long reading the control topic up to its end, or the broker's acks of a round's
#: results, may take before the round is given up (and done again by a new process).
BROKER_TIMEOUT_SECONDS = 30.0
_REPORT_EVERY_SECONDS = 60.0


def client_failed(error: KafkaError) -> bool:
    """Whether ``error`` leaves the Kafka client unusable (e.g. this processor was fenced:
    another member joined with its ``group.instance.id``, as after a broker outage).

    librdkafka reports such an error as an event of code ``_FATAL``, whose ``fatal()`` is
    not set; from then on the consumer fetches and commits nothing, and only a new one
    (a new process) can take the work again.
    """
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def outcome(
    batch: ItemBatch, view: ControlView, minter: CodeMinter, taken_at: datetime | None = None
) -> ResultBatch | None:
    """What becomes of ``batch``: its result (skipped items if its operation was cancelled),
    or None when it goes back to the worker to be held (its operation is paused).

    ``taken_at``: when the processor took the batch, before it read the controls; its items'
    ``processed_at``.
    """
    kind = kind_of(batch.operation_type)
    if not kind.stateless:
        raise InvalidMessage(f"{batch.operation_type.value} batches are not processed here")
    reason = view.stop_reason(batch.operation_id)
    if reason is not None:
        return kind.annotate(batch, skip_batch(batch, reason))
    if view.is_paused(batch.operation_id):
        return None
    return kind.annotate(batch, kind.process_alone(minter, batch, taken_at))


class Processor:
    """One processor: the work topic in, results (and holds) out."""

    def __init__(self, settings: WorkerSettings, index: int) -> None:
        self.name = f"processor {index}"
        self._group = settings.processor_group
        self._topics = Topics(settings.topic_prefix)
        self._minter = CodeMinter(settings.code_secret)
        retention = timedelta(seconds=settings.early_control_retention_seconds)
        self._controls = ControlFollower(
            settings.kafka_bootstrap, self._topics.control.name, ControlView(retention)
        )
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": settings.processor_group,
                # Static membership: a processor started again takes its partitions back at once.
                "group.instance.id": f"{settings.processor_group}-{settings.instance_id}-{index}",
                "session.timeout.ms": int(settings.session_timeout_seconds * 1000),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "logger": client_logger("processor"),
            }
        )
        self._producer = Producer(
            {**producer_config(settings.kafka_bootstrap), "logger": client_logger("processor")}
        )
        self._undelivered: list[str] = []
        self._done = 0
        self._reported = time.monotonic()

    def run(self, running: Callable[[], bool]) -> None:
        """Process rounds of batches while ``running()``; then leave cleanly."""
        partitions = self._controls.start()
        self._consumer.subscribe([self._topics.work.name])
        log.info(
            "%s: taking %s (group %s), controls from %d partitions",
            self.name,
            self._topics.work.name,
            self._group,
            partitions,
        )
        try:
            while running():
                first = self._consumer.poll(0.5)
                if first is not None:  # and what else has arrived, without waiting for more
                    self._round([first, *self._consumer.consume(ROUND - 1, 0)])
                self._report()
        finally:
            self._consumer.close()
            self._controls.close()
            self._producer.flush(10)

    def _round(self, messages: list[Message]) -> None:
        """Process ``messages``; commit their offsets once everything they caused is on the
        broker. A failure leaves them uncommitted: the process exits and they come again."""
        for message in messages:
            error = message.error()
            if error is not None:
                if client_failed(error):
                    raise KafkaException(error)
                log.warning("%s: %s", self.name, error)
                continue
            self._handle(message)
        self._producer.flush(BROKER_TIMEOUT_SECONDS)
        if len(self._producer) or self._undelivered:
            raise KafkaException(f"results not delivered: {self._undelivered[:3]}")
        offsets = {
            (m.topic() or "", m.partition() or 0): m.offset() or 0
            for m in messages
            if m.error() is None
        }
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:  # e.g. the partitions moved on: their new owner replays
            if isinstance(exc.args[0], KafkaError) and client_failed(exc.args[0]):
                raise
            log.warning("%s: offsets not committed (%s): the round is done again", self.name, exc)

    def _handle(self, message: Message) -> None:
        key, value = message.key(), message.value() or b""
        try:
            batch = ItemBatch.model_validate_json(value)
            check_sponsor_key(key, batch.sponsor_id)
            # Stamped before the controls are read: a batch that goes on passed its check
            # before any cancel it missed was answered, and its items say so.
            taken_at = datetime.now(UTC)
            self._controls.catch_up(message.partition() or 0, BROKER_TIMEOUT_SECONDS)
            result = outcome(batch, self._controls.view, self._minter, taken_at)
        except (ValidationError, ValueError) as exc:
            letter = dead_letter_of(
                message.topic() or "",
                message.partition() or 0,
                message.offset() or 0,
                key,
                value,
                str(exc),
                exc,
            )
            self._send(self._topics.dead_letter.name, key, letter)
            return
        if result is None:
            hold = BatchHold(sponsor_id=batch.sponsor_id, batch=batch)
            self._send(self._topics.operations.name, sponsor_key(batch.sponsor_id), hold)
            log.debug("operation %s: batch %d held (paused)", batch.operation_id, batch.batch_index)
            return
        self._send(self._topics.results.name, sponsor_key(batch.sponsor_id), result)
        self._done += 1

    def _send(self, topic: str, key: bytes | None, value: BaseModel) -> None:
        def delivered(err: KafkaError | None, _: Message) -> None:
            if err is not None:
                self._undelivered.append(f"{topic}: {err.str()}")

        self._producer.produce(topic, value.model_dump_json().encode(), key, on_delivery=delivered)
        self._producer.poll(0)

    def _report(self) -> None:
        if time.monotonic() - self._reported < _REPORT_EVERY_SECONDS:
            return
        self._reported = time.monotonic()
        forgotten = self._controls.view.forget_before(datetime.now(UTC))
        if self._done:
            log.info("%s: %d batches processed in the last minute", self.name, self._done)
            self._done = 0
        if forgotten:
            log.info("%s: %d old controls forgotten", self.name, forgotten)


def run(settings: WorkerSettings, index: int, *, watch_parent: bool) -> None:
    """Run processor ``index`` until SIGTERM or SIGINT (or, with ``watch_parent``, until
    the process that started it is gone)."""
    stopping = threading.Event()
    parent = os.getppid()

    def stop(signum: int, _: FrameType | None) -> None:
        log.info("processor %d: stopping (%s)", index, signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def running() -> bool:
        if watch_parent and os.getppid() != parent:
            log.warning("processor %d: the worker that started it is gone; stopping", index)
            stopping.set()
        return not stopping.is_set()

    Processor(settings, index).run(running)
