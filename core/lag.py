"""Consumer lag of the worker group: what an operator looks at first.

Lag of a partition = its end offset minus the group's committed offset (the next message the
group will read); a partition the group never committed counts from its earliest retained
offset. Read from the broker with two admin requests (the group's offsets, the end offsets)
plus the topics' metadata, so it shows every partition of the group whichever process holds
it, the way ``kafka-consumer-groups --describe`` does. Cached for a few seconds: scrapes and
dashboard refreshes do not each cost a round trip.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from core.kafkalog import client_logger
from core.settings import BulkopsSettings
from core.topics import Topics

log = logging.getLogger("bulkops.lag")


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    position: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.position)


class ConsumerLag:
    """The lag of ``group`` on ``topics``; also a Prometheus collector
    (``bulkops_consumer_lag_messages``, ``bulkops_consumer_lag_probe_ok``)."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Sequence[str],
        *,
        cache_seconds: float = 5.0,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": 2000,
            "logger": client_logger("lag"),
        }
        self._admin = AdminClient(config)
        self.group = group
        self.topics = list(topics)
        self._cache_seconds = cache_seconds
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._last: list[PartitionLag] | None = None

    def read(self) -> list[PartitionLag] | None:
        """Every partition's lag, at most ``cache_seconds`` old; None if the broker did not
        answer (blocking: call it from a thread)."""
        with self._lock:
            if self._clock() - self._read_at >= self._cache_seconds:
                self._last = self._probe()
                self._read_at = self._clock()
            return self._last

    def _probe(self) -> list[PartitionLag] | None:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout)
            partitions = [
                TopicPartition(topic, p)
                for topic in self.topics
                if topic in metadata.topics
                for p in sorted(metadata.topics[topic].partitions)
            ]
            if not partitions:
                return []
            ends = self._offsets(partitions, OffsetSpec.latest())
            starts = self._offsets(partitions, OffsetSpec.earliest())
            request = ConsumerGroupTopicPartitions(self.group, partitions)
            answer = self._admin.list_consumer_group_offsets(
                [request], request_timeout=self._timeout
            )[self.group].result()
        except KafkaException as exc:
            log.warning("consumer lag of %s not read: %s", self.group, exc)
            return None
        # The next offset the group reads; never committed: the earliest one still kept.
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions if tp.offset >= 0
        }
        return [
            PartitionLag(tp.topic, tp.partition, committed.get(key, starts[key]), ends[key])
            for tp in partitions
            for key in [(tp.topic, tp.partition)]
        ]

    def _offsets(
        self, partitions: list[TopicPartition], spec: OffsetSpec
    ) -> dict[tuple[str, int], int]:
        futures = self._admin.list_offsets(
            {tp: spec for tp in partitions}, request_timeout=self._timeout
        )
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    def retained(self, topic: str) -> int | None:
        """Messages ``topic`` holds now (end minus earliest offsets); None if the broker did
        not answer (blocking)."""
        try:
            metadata = self._admin.list_topics(topic, timeout=self._timeout)
            if metadata.topics[topic].error is not None:
                return None
            partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
            ends = self._offsets(partitions, OffsetSpec.latest())
            starts = self._offsets(partitions, OffsetSpec.earliest())
        except KafkaException as exc:
            log.warning("size of %s not read: %s", topic, exc)
            return None
        return sum(ends[key] - starts[key] for key in ends)

    def collect(self) -> Iterator[Metric]:
        return LagMetrics(self).collect()


class LagMetrics:
    """The lag of several groups as one Prometheus collector (one family per metric)."""

    def __init__(self, *probes: ConsumerLag) -> None:
        self.probes = probes

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "bulkops_consumer_lag_probe_ok",
            "1 if the broker answered the last consumer lag probe, else 0.",
            labels=["group"],
        )
        family = GaugeMetricFamily(
            "bulkops_consumer_lag_messages",
            "Messages not yet consumed by the group, per topic and partition.",
            labels=["group", "topic", "partition"],
        )
        for probe in self.probes:
            lags = probe.read()
            up.add_metric([probe.group], 0.0 if lags is None else 1.0)
            for lag in lags or ():
                family.add_metric([probe.group, lag.topic, str(lag.partition)], float(lag.lag))
        yield up
        yield family


def worker_lag(settings: BulkopsSettings) -> ConsumerLag:
    """The lag of the worker group on the topics it consumes."""
    return ConsumerLag(
        settings.kafka_bootstrap, settings.app_id, Topics(settings.topic_prefix).consumed()
    )


def processor_lag(settings: BulkopsSettings) -> ConsumerLag:
    """The lag of the processor processes' group on the work topic."""
    return ConsumerLag(
        settings.kafka_bootstrap,
        settings.processor_group,
        [Topics(settings.topic_prefix).work.name],
    )
