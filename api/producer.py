"""The API's Kafka producer: confluent-kafka, idempotent, ``acks=all``.

A send resolves only once the broker has acknowledged the message, so a 202 means the
operation is durably on the topic. The partitioner is ``murmur2_random``, the Java client's
(and aiokafka's) hash, so a sponsor's messages land on the same partition whichever client
produced them: the worker's tables rely on that co-partitioning.

When a message is not acknowledged, what the caller may promise depends on whether it could
still be written: :class:`ProduceError` says so. A message purged from the local queue never
left the process (``_PURGE_QUEUE``); one that timed out may have been sent and written
without the acknowledgement arriving (librdkafka's message status is not exposed to Python,
so a timeout counts as *possibly persisted*). The API's submit therefore gives up in two
steps (:mod:`api.services.submission`): it purges what is still queued, then waits for the
reports of what is in flight, which ``message.timeout.ms`` bounds below the API's own wait.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from core.kafkalog import client_logger
from core.producing import producer_config

# Failures after which the message is certainly not in the log.
_NOT_PERSISTED = frozenset(
    {
        KafkaError._PURGE_QUEUE,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError._QUEUE_FULL,
        KafkaError._INVALID_ARG,
    }
)


class ProduceError(RuntimeError):
    """The broker did not acknowledge a message; ``possibly_persisted`` if it may be in the log."""

    def __init__(self, reason: str, *, possibly_persisted: bool) -> None:
        super().__init__(reason)
        self.possibly_persisted = possibly_persisted


class MessageSink(Protocol):
    """What the API needs from a producer (the test fake implements the same)."""

    def produce(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> asyncio.Future[None]:
        """Queue a message (on the key's partition unless one is named); the future resolves
        on its delivery report."""
        ...

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> None: ...

    def purge_queued(self) -> None:
        """Fail every message not yet sent to a broker (``ProduceError``, not persisted)."""
        ...

    def unreachable(self, timeout: float) -> str | None:
        """Why no broker answers within ``timeout`` seconds (blocking), or None if one does."""
        ...

    def close(self) -> None: ...


def delivery_error(err: KafkaError) -> ProduceError:
    return ProduceError(
        f"{err.name()}: {err.str()}", possibly_persisted=err.code() not in _NOT_PERSISTED
    )


class KafkaMessageSink:
    """confluent-kafka producer with a poll thread that resolves asyncio futures.

    ``delivery_timeout`` is librdkafka's ``message.timeout.ms``: every message gets its
    delivery report within it (plus the poll interval), delivered or not.
    """

    def __init__(self, bootstrap: str, *, delivery_timeout: float = 30.0) -> None:
        config = producer_config(bootstrap, delivery_timeout)
        config["logger"] = client_logger("producer")
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=self._poll, name="bulkops-producer-poll", daemon=True
        )
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def produce(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            error = None if err is None else delivery_error(err)
            loop.call_soon_threadsafe(_resolve, future, error)

        try:
            if partition is None:
                self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
            else:
                self._producer.produce(
                    topic, value=value, key=key, partition=partition, on_delivery=delivered
                )
        except (BufferError, KafkaException) as exc:  # refused locally: never queued
            future.set_exception(ProduceError(str(exc), possibly_persisted=False))
        return future

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> None:
        await self.produce(topic, key, value, partition)

    def purge_queued(self) -> None:
        self._producer.purge(in_queue=True, in_flight=False, blocking=False)

    def unreachable(self, timeout: float) -> str | None:
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as exc:
            return f"Kafka: {exc.args[0].str() if exc.args else exc}"
        return None

    def close(self) -> None:
        self._producer.flush(10)
        self._stop.set()
        self._poller.join(timeout=5)


def _resolve(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
