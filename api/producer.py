"""The API's Kafka producer: confluent-kafka, idempotent, ``acks=all``.

``send`` returns only once the broker has acknowledged the message, so a 202 means the
operation is durably on the topic. The partitioner is ``murmur2_random``, the Java client's
(and aiokafka's) hash, so a sponsor's messages land on the same partition whichever client
produced them: the worker's tables rely on that co-partitioning.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol

from confluent_kafka import KafkaError, Message, Producer


class ProduceError(RuntimeError):
    """The broker did not acknowledge a message."""


class MessageSink(Protocol):
    """What the API needs from a producer (the test fake implements the same)."""

    async def send(self, topic: str, key: bytes, value: bytes) -> None: ...

    def close(self) -> None: ...


def producer_config(bootstrap: str) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 2,
        "message.max.bytes": 1_048_576,
        "message.timeout.ms": 30_000,
    }


class KafkaMessageSink:
    """confluent-kafka producer with a poll thread that resolves asyncio futures."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = Producer(producer_config(bootstrap))
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=self._poll, name="bulkops-producer-poll", daemon=True
        )
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                loop.call_soon_threadsafe(_resolve, future, None)
            else:
                loop.call_soon_threadsafe(_resolve, future, ProduceError(str(err)))

        self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
        await future

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
