"""Bad messages on the topics, partitioner agreement, topic settings (worker kills are in
``test_worker_faults``)."""

from __future__ import annotations

import uuid

import orjson
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from api.producer import producer_config
from core.topics import sponsor_key
from schemas.messages import DeadLetter
from tests.integration.conftest import Server
from tests.integration.test_codegen_flow import all_codes, wait_terminal
from tests.support import wait_for


def dead_letters(bootstrap: str, topic: str, expected: int) -> list[DeadLetter]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dlq-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    letters: list[DeadLetter] = []

    def collect() -> bool:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            letters.append(DeadLetter.model_validate_json(message.value() or b""))
        return len(letters) >= expected

    try:
        wait_for(collect, timeout=60, interval=0, message=f"{expected} dead letters")
    finally:
        consumer.close()
    return letters


def test_malformed_requests_go_to_dead_letter_and_worker_goes_on(server: Server) -> None:
    bootstrap = server.env["BULKOPS_KAFKA_BOOTSTRAP"]
    producer = Producer(producer_config(bootstrap))
    valid_shape = {
        "operationId": f"codegen_{uuid.uuid4().hex}",
        "operationType": "BulkCodeGeneration",
        "sponsorId": 7,
        "requestedBy": "other-system",
        "requestedAt": "2026-01-01T00:00:00Z",
        "totalItems": 10,
        "codeGeneration": {"subscriptionTierId": 1, "quantity": 10},
    }
    bad = [
        (b"7", b"{not json"),
        (b"7", orjson.dumps({**valid_shape, "totalItems": -5})),
        (b"8", orjson.dumps(valid_shape)),  # keyed by the wrong sponsor
        (
            b"7",
            orjson.dumps(
                {
                    **valid_shape,
                    "totalItems": 10_000_000,
                    "codeGeneration": {"subscriptionTierId": 1, "quantity": 10_000_000},
                }
            ),
        ),
    ]
    for key, value in bad:
        producer.produce(server.topics.operations.name, key=key, value=value)
    good = {**valid_shape, "operationId": f"codegen_{uuid.uuid4().hex}"}
    producer.produce(server.topics.operations.name, key=sponsor_key(7), value=orjson.dumps(good))
    assert producer.flush(10) == 0

    letters = dead_letters(bootstrap, server.topics.dead_letter.name, expected=len(bad))
    assert len(letters) == len(bad)
    reasons = [letter.reason for letter in letters]
    assert all(letter.source_topic == server.topics.operations.name for letter in letters)
    assert any("Invalid JSON" in r for r in reasons)
    assert any("totalItems" in r for r in reasons)
    assert any("does not match sponsorId" in r for r in reasons)
    assert any("at most" in r and "items per operation" in r for r in reasons)
    assert letters[0].payload == "{not json"

    client = server.client(sponsor_id=7)
    assert wait_terminal(client, good["operationId"])["status"] == "Completed"
    assert len(all_codes(client, good["operationId"])) == 10


def test_confluent_and_aiokafka_agree_on_sponsor_partitions(kafka_bootstrap: str) -> None:
    """The API (confluent-kafka) and the worker (aiokafka) must put a sponsor on one partition."""
    topic = f"partitioner-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=8, replication_factor=1)])[topic].result()
    producer = Producer(producer_config(kafka_bootstrap))
    delivered: dict[int, int] = {}
    for sponsor in range(1, 200):
        producer.produce(
            topic,
            key=sponsor_key(sponsor),
            value=b"x",
            on_delivery=lambda err, msg, s=sponsor: delivered.__setitem__(s, msg.partition()),
        )
    assert producer.flush(10) == 0
    partitioner = DefaultPartitioner()
    expected = {
        s: partitioner(sponsor_key(s), list(range(8)), list(range(8))) for s in range(1, 200)
    }
    assert delivered == expected
    admin.delete_topics([topic])[topic].result()


def test_status_topic_is_compacted(server: Server) -> None:
    admin = AdminClient({"bootstrap.servers": server.env["BULKOPS_KAFKA_BOOTSTRAP"]})
    resource = ConfigResource(ResourceType.TOPIC, server.topics.status.name)
    config = admin.describe_configs([resource])[resource].result()
    assert config["cleanup.policy"].value == "compact"
    partitions = admin.list_topics(timeout=10).topics
    sizes = {len(partitions[spec.name].partitions) for spec in server.topics.all()}
    assert sizes == {4}, "every topic must share one partition count"
