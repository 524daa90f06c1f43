"""Worker faults on the real broker: SIGKILLs mid-operation, batches lost past a committed
offset, a second submission of one operation. Nothing is lost, nothing counts twice."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from api.producer import producer_config
from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, probe_every_code_once, provider_env
from tests.integration.test_codegen_flow import all_codes, submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.support import wait_for

# What the worker logs when its consumer skipped offsets, or when the watchdog had to act.
SKIPPED = "were skipped by the consumer"
REDRIVEN = "re-drove"


def processed(client: httpx.Client, operation_id: str) -> int:
    response = client.get(f"/status/{operation_id}")
    return int(response.json()["data"]["metrics"]["processedItems"]) if response.is_success else 0


def kill_at(
    server: Server, client: httpx.Client, operation_id: str, share: float, total: int
) -> None:
    """SIGKILL the server once ``share`` of the items are counted, and start it again."""
    wait_for(
        lambda: processed(client, operation_id) >= share * total,
        timeout=180,
        interval=0.02,
        message=f"{share:.0%} processed",
    )
    server.stop(kill=True)
    server.start()


def log_of(server: Server) -> str:
    return server.log_path.read_text(errors="replace")


@pytest.mark.parametrize("run", range(1, int(os.environ.get("BULKOPS_KILL_RUNS", "1")) + 1))
def test_three_kills_mid_send_lose_nothing_and_count_each_recipient_once(
    make_server: Any, simulator: SimulatorThread, run: int
) -> None:
    """The operator's scenario of issue 9: 20,000 SMS paced at 1,000/s, SIGKILLed at about
    25 %, 50 % and 80 %, restarted each time with the same instance id."""
    simulator.simulator.config.rate_per_second = 1000
    server: Server = make_server(
        BULKOPS_INSTANCE_ID=f"fixed-{run}", **provider_env(simulator, sender_rate_sms=1000)
    ).start()
    client = server.client(sponsor_id=23)
    total = 20_000
    operation_id = submit(client, body(total, "SMS", batchSize=100), "/send-links")
    for share in (0.25, 0.5, 0.8):
        kill_at(server, client, operation_id, share, total)
        client = server.client(sponsor_id=23)

    status = wait_terminal(client, operation_id, timeout=180)
    assert status["status"] == "Completed", status
    metrics = status["metrics"]
    assert metrics["processedItems"] == metrics["successfulItems"] == total
    keys = [entry["key"] for entry in simulator.simulator.entries()]
    assert len(keys) == total and set(keys) == {f"{operation_id}:{i}" for i in range(total)}
    text = log_of(server)
    assert SKIPPED not in text, "the consumer skipped offsets"
    assert REDRIVEN not in text, "nothing was lost, so the watchdog had nothing to do"


def test_two_kills_mid_code_generation_make_every_code_once(make_server: Any) -> None:
    server: Server = make_server(
        BULKOPS_MAX_ITEMS_PER_OPERATION="300000", BULKOPS_INSTANCE_ID="fixed-codes"
    ).start()
    client = server.client(sponsor_id=11)
    quantity = 300_000
    operation_id = submit(
        client,
        {
            "subscriptionTierId": 4,
            "quantity": quantity,
            "codePrefix": "KILL",
            "processing": {"batchSize": 250},
        },
    )
    for share in (0.3, 0.65):
        kill_at(server, client, operation_id, share, quantity)
        client = server.client(sponsor_id=11)

    status = wait_terminal(client, operation_id, timeout=300)
    assert status["status"] == "Completed", status
    assert status["metrics"]["processedItems"] == status["metrics"]["successfulItems"] == quantity
    codes = all_codes(client, operation_id)
    assert len(codes) == len({c["code"] for c in codes}) == quantity
    assert SKIPPED not in log_of(server)
    probe_every_code_once(server, operation_id, 11, quantity)


def _skip_to_the_end(server: Server, topics: list[str]) -> int:
    """Commit the worker group's offsets at the end of ``topics``, as the consumer defect
    did: whatever was queued there is never read. Returns how many messages it skips."""
    admin = AdminClient({"bootstrap.servers": server.env["BULKOPS_KAFKA_BOOTSTRAP"]})
    group = f"{server.env['BULKOPS_TOPIC_PREFIX']}-worker"
    partitions = [TopicPartition(topic, p) for topic in topics for p in range(4)]
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed = {
        (tp.topic, tp.partition): max(tp.offset, 0)
        for tp in admin.list_consumer_group_offsets(request)[group].result().topic_partitions
    }
    ends = {
        (tp.topic, tp.partition): future.result().offset
        for tp, future in admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}).items()
    }
    skipped = sum(end - committed[key] for key, end in ends.items())
    moved = [
        ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in ends.items()])
    ]

    def move() -> bool:
        try:
            result = admin.alter_consumer_group_offsets(moved)[group].result()
        except KafkaException:
            return False
        # Refused per partition while the killed member still holds the group (its
        # session has to time out first).
        return all(tp.error is None for tp in result.topic_partitions)

    wait_for(move, timeout=60, interval=0.5, message="the dead worker's session expired")
    return skipped


def test_batches_lost_past_a_committed_offset_are_redriven(
    make_server: Any, simulator: SimulatorThread
) -> None:
    """The symptom of the consumer defect, made on purpose: with the worker down, its
    committed offsets are moved past item batches and results still queued. The watchdog
    must find the operation stalled and drive the lost batches on: every recipient is sent
    once, and batches whose items were already stored are counted without a second send."""
    simulator.simulator.config.rate_per_second = 500
    server: Server = make_server(
        BULKOPS_STALL_SECONDS="3",
        BULKOPS_STALL_CHECK_INTERVAL_SECONDS="0.5",
        BULKOPS_SESSION_TIMEOUT_SECONDS="6",
        **provider_env(simulator, sender_rate_sms=500),
    ).start()
    client = server.client(sponsor_id=31)
    total = 6_000
    operation_id = submit(client, body(total, "SMS", batchSize=50), "/send-links")
    wait_for(
        lambda: processed(client, operation_id) >= total // 3,
        timeout=120,
        interval=0.02,
        message="a third processed",
    )
    server.stop(kill=True)
    topics = server.topics
    lost = _skip_to_the_end(server, [topics.items.name, topics.results.name, topics.progress.name])
    assert lost > 0, "the kill left batches queued"

    started = time.monotonic()
    server.start()
    client = server.client(sponsor_id=31)
    status = wait_terminal(client, operation_id, timeout=180)
    healed_in = time.monotonic() - started
    assert status["status"] == "Completed", status
    assert status["metrics"]["processedItems"] == status["metrics"]["successfulItems"] == total
    keys = [entry["key"] for entry in simulator.simulator.entries()]
    assert sorted(keys) == sorted(f"{operation_id}:{i}" for i in range(total))
    assert REDRIVEN in log_of(server)
    print(f"healed {lost} skipped messages in {healed_in:.1f}s after the restart")


def test_a_second_submission_of_an_operation_is_ignored(
    server: Server, simulator: SimulatorThread
) -> None:
    """Another attempt at the same operation id (an idempotent retry that raced the first):
    the worker keeps the first and ignores every message of the second."""
    bootstrap = server.env["BULKOPS_KAFKA_BOOTSTRAP"]
    operation_id = f"codegen_{uuid.uuid4().hex}"
    request: dict[str, Any] = {
        "operationId": operation_id,
        "operationType": "BulkCodeGeneration",
        "sponsorId": 12,
        "requestedBy": "other-system",
        "requestedAt": "2026-01-01T00:00:00Z",
        "totalItems": 500,
        "codeGeneration": {"subscriptionTierId": 1, "quantity": 500},
    }
    producer = Producer(producer_config(bootstrap))
    for attempt in ("first", "second"):
        producer.produce(
            server.topics.operations.name,
            key=b"12",
            value=orjson.dumps({**request, "submissionId": attempt}),
        )
    assert producer.flush(10) == 0
    client = server.client(sponsor_id=12)
    status = wait_terminal(client, operation_id)
    assert status["status"] == "Completed"
    assert status["metrics"]["processedItems"] == 500
    codes = all_codes(client, operation_id)
    assert len(codes) == len({c["code"] for c in codes}) == 500
    wait_for(
        lambda: "another submission of it (second) ignored" in log_of(server),
        timeout=30,
        message="the second submission ignored",
    )
