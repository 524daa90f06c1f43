"""Finished operations leave the worker's tables and the status topic, and are served the
same from the ClickHouse archive; a restarted worker resumes from its RocksDB state."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from tests.integration.conftest import Server, probe_every_code_once
from tests.integration.test_codegen_flow import all_codes, submit, wait_terminal
from tests.integration.test_worker_faults import log_of, processed
from tests.support import wait_for

EVICTED = "archived, left the worker's tables"
ROW = re.compile(r"[|│]\s*(\S+)\s*[|│]\s*(\d+)\s*[|│]\s*(-?\d+)\s*[|│]")


def codes_body(quantity: int, name: str) -> dict[str, Any]:
    return {
        "operationName": name,
        "subscriptionTierId": 2,
        "quantity": quantity,
        "processing": {"batchSize": 500},
    }


def everything_about(client: httpx.Client, operation_id: str) -> dict[str, Any]:
    """What a client can read about an operation, over REST."""
    history = client.get("/history", params={"pageSize": 200}).json()["data"]
    return {
        "status": client.get(f"/status/{operation_id}").json(),
        "items": client.get(f"/items/{operation_id}", params={"pageSize": 50}).json(),
        "aggregates": client.get(f"/aggregates/{operation_id}").json(),
        "history": [entry for entry in history if entry["operationId"] == operation_id],
        "codes": all_codes(client, operation_id),
    }


def status_topic(server: Server) -> dict[bytes, bytes | None]:
    """The status topic's last value per key (None: a tombstone), read to its end."""
    name = server.topics.status.name
    consumer = Consumer(
        {
            "bootstrap.servers": server.env["BULKOPS_KAFKA_BOOTSTRAP"],
            "group.id": f"status-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
    consumer.assign([TopicPartition(name, p, 0) for p in partitions])
    last: dict[bytes, bytes | None] = {}
    at_end: set[int] = set()

    def read() -> bool:
        message = consumer.poll(0.2)
        if message is None:
            return False
        error = message.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            at_end.add(message.partition() or 0)
        elif error is None:
            last[message.key() or b""] = message.value()
        return len(at_end) == len(partitions)

    try:
        wait_for(read, timeout=30, interval=0, message="status topic read to its end")
    finally:
        consumer.close()
    return last


def test_an_evicted_operation_is_served_identically_before_and_after_a_restart(
    make_server: Any,
) -> None:
    server: Server = make_server(
        BULKOPS_FINISHED_RETENTION_SECONDS="3",
        BULKOPS_EVICTION_INTERVAL_SECONDS="0.5",
    ).start()
    client = server.client(sponsor_id=7)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    accepted = client.post("/generate-codes", json=codes_body(2000, "evicted"), headers=key)
    assert accepted.status_code == 202, accepted.text
    old = accepted.json()["data"]["operationId"]
    wait_terminal(client, old)
    before = everything_about(client, old)
    assert before["status"]["data"]["status"] == "Completed"

    wait_for(
        lambda: (
            f"operation {old}: Completed" in server.log_path.read_text(errors="replace")
            and EVICTED in server.log_path.read_text(errors="replace")
        ),
        timeout=60,
        message="the finished operation evicted",
    )
    running = submit(client, codes_body(1000, "after"))
    assert status_topic(server)[old.encode()] is None, "a tombstone on the status topic"
    assert everything_about(client, old) == before
    again = client.post("/generate-codes", json=codes_body(2000, "evicted"), headers=key)
    assert again.status_code == 202 and again.json() == accepted.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = server.client(sponsor_id=8)
    assert other.get(f"/status/{old}").status_code == 404, "still another sponsor's"

    wait_terminal(client, running)
    server.stop()
    server.start()
    client = server.client(sponsor_id=7)
    assert everything_about(client, old) == before, "nothing ran again"
    cancelled = client.post(f"/cancel/{old}")
    assert cancelled.status_code == 409, cancelled.text
    assert cancelled.json()["error"] == "OPERATION_FINISHED"


def changelog_ends(server: Server) -> dict[tuple[str, int], int]:
    """The end offset of every partition of the worker's table changelogs."""
    admin = AdminClient({"bootstrap.servers": server.env["BULKOPS_KAFKA_BOOTSTRAP"]})
    partitions = [
        TopicPartition(spec.name, p)
        for spec in server.topics.changelogs()
        for p in range(int(server.env["BULKOPS_PARTITIONS"]))
    ]
    ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions})
    return {(tp.topic, tp.partition): future.result().offset for tp, future in ends.items()}


def recovery_starts(log: str) -> dict[tuple[str, int], int]:
    """Where the last recovery began to read each changelog partition, from Faust's
    "Reading Starts At - Active" table (a repeated topic name is printed as a ditto mark)."""
    table = log.rsplit("Reading Starts At - Active", 1)[1].split("\n\n", 1)[0]
    starts: dict[tuple[str, int], int] = {}
    topic = ""
    for name, partition, offset in ROW.findall(table):
        topic = topic if name == "〃" else name
        starts[(topic, int(partition))] = int(offset) + 1  # Faust logs the offset before
    return starts


def test_a_killed_worker_resumes_from_its_local_state_with_exact_counts(
    make_server: Any,
) -> None:
    server: Server = make_server(
        BULKOPS_MAX_ITEMS_PER_OPERATION="200000", BULKOPS_INSTANCE_ID="fixed-restart"
    ).start()
    client = server.client(sponsor_id=5)
    small = [submit(client, codes_body(10, f"small {i}")) for i in range(150)]
    for operation_id in small:
        wait_terminal(client, operation_id)
    big = submit(client, codes_body(200_000, "running"))
    wait_for(lambda: processed(client, big) >= 40_000, timeout=120, interval=0.05, message="20 %")
    server.stop(kill=True)
    ends = changelog_ends(server)
    server.start()

    starts = recovery_starts(log_of(server))
    written = sum(ends.values())
    replayed = sum(max(0, ends[tp] - starts.get(tp, 0)) for tp in ends)
    # At least: a serial and two quota records per small operation, two operation states.
    assert written >= 150 * 5, ends
    assert replayed < written / 10, f"replayed {replayed} of {written} changelog records"

    status = wait_terminal(server.client(sponsor_id=5), big, timeout=180)
    metrics = status["metrics"]
    assert status["status"] == "Completed", status
    assert metrics["processedItems"] == metrics["successfulItems"] == 200_000
    probe_every_code_once(server, big, 5, 200_000)
