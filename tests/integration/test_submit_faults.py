"""Submitting while the broker is away: a 503 means the operation will not run.

These tests stop and restart a broker of their own (the session's broker serves the rest).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer

from bulkops import localkafka
from tests.integration.conftest import Server
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.support import wait_for


def operations_on_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Every message of ``topic``, read from the beginning by a throwaway group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 3:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            values.append(message.value() or b"")
            idle_since = time.monotonic()
    finally:
        consumer.close()
    return values


def test_a_503_while_the_broker_is_down_means_the_operation_never_runs(
    own_broker: localkafka.Broker, make_server: Any
) -> None:
    """Issue 9, part 2: the broker is down, the API answers 503, the broker comes back
    before the producer's old 30-second message timeout would have expired. The operation
    must not appear, run or reach the topic; a retry with the same key then runs it once."""
    address = own_broker.bootstrap
    server: Server = make_server(
        BULKOPS_KAFKA_BOOTSTRAP=address, BULKOPS_PRODUCE_TIMEOUT_SECONDS="5"
    ).start()
    client = server.client(sponsor_id=41)
    warm = submit(client, {"subscriptionTierId": 1, "quantity": 10})
    assert wait_terminal(client, warm)["status"] == "Completed"

    localkafka.stop(own_broker.data_dir)
    started = time.monotonic()
    key = {"Idempotency-Key": "q4-codes"}
    refused = client.post(
        "/generate-codes", json={"subscriptionTierId": 1, "quantity": 1000}, headers=key
    )
    waited = time.monotonic() - started
    assert refused.status_code == 503, refused.text
    body = refused.json()
    assert body["error"] == "SYSTEM_ERROR"
    assert body["details"]["outcome"] == "not_queued"
    operation_id = body["details"]["operationId"]
    assert waited < 7, f"the API gave up after {waited:.1f}s"

    # Back long before the old 30 s message timeout, on the same ports.
    assert localkafka.start(own_broker.data_dir).bootstrap == address
    fresh = submit(client, {"subscriptionTierId": 1, "quantity": 10})
    assert wait_terminal(client, fresh, timeout=120)["status"] == "Completed"
    assert client.get(f"/status/{operation_id}").status_code == 404
    assert all(
        operation_id.encode() not in value
        for value in operations_on_topic(address, server.topics.operations.name)
    )

    retried = client.post(
        "/generate-codes", json={"subscriptionTierId": 1, "quantity": 1000}, headers=key
    )
    assert retried.status_code == 202
    assert retried.json()["data"]["operationId"] == operation_id
    assert wait_terminal(client, operation_id)["metrics"]["successfulItems"] == 1000
    wait_for(
        lambda: "not queued, it will not run" in server.log_path.read_text(errors="replace"),
        timeout=5,
        message="the refusal logged with its reason",
    )
