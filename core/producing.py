"""The producer settings every Bulkops producer shares (the API's, the processors')."""

from __future__ import annotations


def producer_config(bootstrap: str, delivery_timeout: float = 30.0) -> dict[str, object]:
    """Idempotent, ``acks=all``, and the Java client's (and aiokafka's) ``murmur2`` hash, so a
    sponsor's messages land on the same partition whichever client produced them."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 2,
        "message.max.bytes": 1_048_576,
        "message.timeout.ms": max(1000, int(delivery_timeout * 1000)),
    }
