"""The live view of operation status, fed by the compacted status topic.

The view reads the whole topic from the beginning on start (no consumer group, no commits),
so an API that restarts rebuilds every operation's latest snapshot before it answers; after
that it follows the topic. Snapshots carry a ``version``; the view keeps the newest.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import ValidationError

from core.kafkalog import client_logger
from schemas.messages import OperationSnapshot

log = logging.getLogger("bulkops.api.status")


class StatusView:
    """In-memory latest snapshot per operation id; thread-safe."""

    def __init__(self) -> None:
        self._snapshots: dict[str, OperationSnapshot] = {}
        self._lock = threading.Lock()
        self.ready = threading.Event()

    def apply(self, snapshot: OperationSnapshot) -> None:
        with self._lock:
            current = self._snapshots.get(snapshot.operation_id)
            if current is None or (snapshot.version, snapshot.last_updated) >= (
                current.version,
                current.last_updated,
            ):
                self._snapshots[snapshot.operation_id] = snapshot

    def get(self, operation_id: str) -> OperationSnapshot | None:
        with self._lock:
            return self._snapshots.get(operation_id)

    def running_retry_of(self, operation_id: str) -> OperationSnapshot | None:
        """A retry of ``operation_id`` that has not finished, if one exists."""
        with self._lock:
            for snapshot in self._snapshots.values():
                if snapshot.retry_of == operation_id and not snapshot.status.is_terminal:
                    return snapshot
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._snapshots)


class KafkaStatusFollower:
    """Feeds a :class:`StatusView` from the status topic in a background thread."""

    def __init__(self, bootstrap: str, topic: str, view: StatusView) -> None:
        self._topic = topic
        self._view = view
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bulkops-api-status-view",  # required by librdkafka; never committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "logger": client_logger("status-view"),
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bulkops-status-view", daemon=True)

    def start(self) -> None:
        metadata = self._consumer.list_topics(self._topic, timeout=10)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            raise KafkaException(f"status topic {self._topic} is missing: run `bulkops topics`")
        partitions = [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in topic.partitions]
        self._pending_eof = {tp.partition for tp in partitions}
        self._consumer.assign(partitions)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._pending_eof.discard(message.partition())
                    if not self._pending_eof and not self._view.ready.is_set():
                        log.info(
                            "status view caught up: %d operations in %.2fs",
                            len(self._view),
                            time.monotonic() - started,
                        )
                        self._view.ready.set()
                else:
                    log.warning("status view: %s", error)
                continue
            try:
                self._view.apply(OperationSnapshot.model_validate_json(message.value() or b""))
            except ValidationError as exc:
                log.warning(
                    "status view: skipping malformed snapshot at offset %s: %s",
                    message.offset(),
                    exc,
                )

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()
