"""What a processor process knows of cancels and pauses, and how it keeps that fresh.

A processor has no worker tables, yet must keep the cancel promise: no item starts after
the API answered a cancel. The API answers only after its command is on the control topic
(and the worker confirmed it), so a processor that, before each batch, has read the control
topic up to its end *as of that moment* cannot miss an answered cancel. Commands are keyed
by sponsor like the batches, on the same partition count and hash, so the one partition to
read up to is the batch's own: one offset request per batch (:meth:`ControlFollower.catch_up`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from pydantic import ValidationError

from core.kafkalog import client_logger
from schemas.messages import ControlAction, ControlCommand

log = logging.getLogger("bulkops.processor")


class ControlView:
    """Which operations are cancelled and which paused, folded from control commands the way
    the worker's control agent applies them: a cancel is final, a pause lasts until a resume.

    Commands are forgotten ``retention`` after they were given: by then any batch handed out
    before the command has long been processed, and later batches come from the worker,
    which holds those of a paused operation and skips those of a cancelled one itself.
    """

    def __init__(self, retention: timedelta) -> None:
        self._retention = retention
        self._cancelled: dict[str, datetime] = {}
        self._paused: dict[str, datetime] = {}

    def apply(self, command: ControlCommand) -> None:
        op_id, at = command.operation_id, command.requested_at
        if command.action is ControlAction.CANCEL:
            self._cancelled[op_id] = at
            self._paused.pop(op_id, None)
        elif command.action is ControlAction.PAUSE and op_id not in self._cancelled:
            self._paused[op_id] = at
        elif command.action is ControlAction.RESUME:
            self._paused.pop(op_id, None)

    def stop_reason(self, operation_id: str) -> str | None:
        return "CANCELLED" if operation_id in self._cancelled else None

    def is_paused(self, operation_id: str) -> bool:
        return operation_id in self._paused

    def forget_before(self, moment: datetime) -> int:
        """Drop commands given before ``moment - retention``; returns how many."""
        cutoff = moment - self._retention
        dropped = 0
        for kept in (self._cancelled, self._paused):
            for op_id in [op for op, at in kept.items() if at < cutoff]:
                del kept[op_id]
                dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._cancelled) + len(self._paused)


class ControlFollower:
    """Reads the control topic into a :class:`ControlView`, up to its end on demand."""

    def __init__(self, bootstrap: str, topic: str, view: ControlView) -> None:
        self._topic = topic
        self.view = view
        config = {
            "bootstrap.servers": bootstrap,
            "group.id": "bulkops-processor-controls",  # required by librdkafka; never used
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "logger": client_logger("processor-controls"),
        }
        self._consumer = Consumer(config)
        # Asks for the partitions' ends. Not the consumer above: a broker answers a
        # connection's requests in order, so its offset requests would queue behind its fetch
        # long-polls (up to 500 ms each).
        self._ends = Consumer(config)
        self._next: dict[int, int] = {}

    def start(self, timeout: float = 10.0) -> int:
        """Assign every partition of the topic from its beginning; returns their number."""
        metadata = self._consumer.list_topics(self._topic, timeout=timeout)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            raise KafkaException(f"topic {self._topic} is missing: run `bulkops topics`")
        self._consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in topic.partitions]
        )
        self._next = dict.fromkeys(topic.partitions, 0)
        return len(topic.partitions)

    def catch_up(self, partition: int, timeout: float) -> None:
        """Return once every command written to ``partition`` before this call is applied;
        raise ``TimeoutError`` if that takes longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        _, end = self._ends.get_watermark_offsets(
            TopicPartition(self._topic, partition), timeout=timeout, cached=False
        )
        while self._next.get(partition, 0) < end:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self._topic}[{partition}] not read up to {end}")
            for message in self._consumer.consume(500, min(left, 0.1)):
                self._apply(message)

    def _apply(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("control topic: %s", error)
            return
        partition, offset = message.partition() or 0, message.offset() or 0
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        value = message.value()
        if value is None:
            return
        try:
            self.view.apply(ControlCommand.model_validate_json(value))
        except ValidationError as exc:  # the worker dead-letters it; here it is only skipped
            log.warning("control topic: skipping a malformed command at %d: %s", offset, exc)

    def close(self) -> None:
        self._consumer.close()
        self._ends.close()
