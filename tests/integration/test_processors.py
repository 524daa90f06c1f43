"""Processor processes on the real broker and chDB, through the REST API: code batches are
made beside the worker, a killed processor loses nothing and makes nothing twice, and no
code is made after a cancel was answered."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import orjson
import psutil
from confluent_kafka import Consumer, Producer, TopicPartition

from api.producer import producer_config
from tests.integration.conftest import Server, probe_every_code_once, run_probe
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_metrics import scrape, total
from tests.integration.test_resilience import dead_letters
from tests.support import wait_for


def processor_pids(server: Server) -> list[int]:
    assert server.process is not None
    pids = []
    for child in psutil.Process(server.process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "processor" in child.cmdline():
                pids.append(child.pid)
        except psutil.Error:  # gone meanwhile
            continue
    return pids


def messages_on(server: Server, topic: str) -> int:
    """How many messages ``topic`` holds (the sum of its partitions' end offsets)."""
    consumer = Consumer(
        {"bootstrap.servers": server.env["BULKOPS_KAFKA_BOOTSTRAP"], "group.id": "probe"}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def processed(client: httpx.Client, operation_id: str) -> int:
    response = client.get(f"/status/{operation_id}")
    return int(response.json()["data"]["metrics"]["processedItems"]) if response.is_success else 0


def codes(quantity: int, batch_size: int) -> dict[str, Any]:
    return {
        "subscriptionTierId": 1,
        "quantity": quantity,
        "processing": {"batchSize": batch_size},
    }


def test_code_batches_are_made_by_the_processors_every_code_once(make_server: Any) -> None:
    server: Server = make_server(
        BULKOPS_PROCESSORS="2", BULKOPS_MAX_ITEMS_PER_OPERATION="50000"
    ).start()
    wait_for(lambda: len(processor_pids(server)) == 2, timeout=30, message="two processors")
    client = server.client(sponsor_id=61)
    operation_id = submit(client, codes(50_000, 1000))
    status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Completed", status
    assert status["metrics"]["successfulItems"] == 50_000
    assert messages_on(server, server.topics.work.name) == 50
    assert messages_on(server, server.topics.items.name) == 0, "no code batch in the worker"
    probe_every_code_once(server, operation_id, 61, 50_000)


def under_way(
    make_server: Any, sponsor_id: int, quantity: int, made: int, **env: str
) -> tuple[Server, httpx.Client, int, str]:
    """A server with one processor (its pid) and an operation of ``quantity`` codes of which
    at least ``made`` are made."""
    server: Server = make_server(
        BULKOPS_PROCESSORS="1", BULKOPS_MAX_ITEMS_PER_OPERATION=str(quantity), **env
    ).start()
    (first,) = wait_for(lambda: processor_pids(server), timeout=30, message="a processor")
    client = server.client(sponsor_id=sponsor_id)
    operation_id = submit(client, codes(quantity, 500))
    wait_for(
        lambda: processed(client, operation_id) >= made,
        timeout=120,
        interval=0.02,
        message=f"{made} codes made",
    )
    return server, client, first, operation_id


def replaced(server: Server, first: int) -> None:
    wait_for(
        lambda: [pid for pid in processor_pids(server) if pid != first],
        timeout=60,
        message="the processor started again",
    )


def completes_exactly(client: httpx.Client, operation_id: str, quantity: int) -> None:
    status = wait_terminal(client, operation_id, timeout=180)
    assert status["status"] == "Completed", status
    metrics = status["metrics"]
    assert metrics["processedItems"] == metrics["successfulItems"] == quantity


def test_a_processor_killed_mid_operation_loses_nothing_and_makes_each_code_once(
    make_server: Any,
) -> None:
    quantity = 300_000
    server, client, first, operation_id = under_way(make_server, 62, quantity, quantity // 5)
    os.kill(first, signal.SIGKILL)
    assert processed(client, operation_id) < quantity, "killed mid-operation"
    replaced(server, first)
    completes_exactly(client, operation_id, quantity)
    assert "processor 0 exited with SIGKILL" in server.log_path.read_text(errors="replace")
    samples = scrape(server)
    assert total(samples, "bulkops_processor_restarts_total", exit="SIGKILL") == 1
    assert total(samples, "bulkops_processors_running") == 1
    probe_every_code_once(server, operation_id, 62, quantity)


def test_a_fenced_processor_is_replaced_and_each_code_is_made_once(make_server: Any) -> None:
    """Another member joining with a processor's instance id fences it (a broker outage can
    leave that behind). Its client is then unusable: the processor exits, is started again
    and the operation completes, each code made once."""
    quantity = 200_000
    server, client, first, operation_id = under_way(
        make_server, 65, quantity, quantity // 10, BULKOPS_INSTANCE_ID="fenced"
    )
    group = f"{server.env['BULKOPS_TOPIC_PREFIX']}-worker-processors"
    intruder = Consumer(
        {
            "bootstrap.servers": server.env["BULKOPS_KAFKA_BOOTSTRAP"],
            "group.id": group,
            "group.instance.id": f"{group}-fenced-0",
            "session.timeout.ms": 6000,
            "enable.auto.commit": False,
        }
    )
    try:
        intruder.subscribe([server.topics.work.name])
        wait_for(
            lambda: intruder.poll(0.2) is not None or bool(intruder.assignment()),
            timeout=60,
            message="the intruder in the group",
        )
    finally:
        intruder.close()  # nothing committed: what it took goes to the processor again
    replaced(server, first)
    completes_exactly(client, operation_id, quantity)
    assert "processor 0 exited with" in server.log_path.read_text(errors="replace")
    probe_every_code_once(server, operation_id, 65, quantity)


def test_no_code_is_made_after_a_cancel_is_answered(make_server: Any) -> None:
    quantity = 600_000
    server, client, _, operation_id = under_way(make_server, 63, quantity, 20_000)
    response = client.post(f"/cancel/{operation_id}")
    answered = time.time()
    assert response.status_code == 200, response.text
    status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Cancelled", status
    metrics = status["metrics"]
    made = metrics["successfulItems"]
    assert 20_000 <= made < quantity
    assert made + metrics["skippedItems"] == metrics["processedItems"] == quantity
    server.stop()
    probe = run_probe(server.chdb_path, operation_id, 63)
    assert probe["success_items"] == probe["unique_codes"] == made
    assert probe["last_success_at"] is not None
    assert probe["last_success_at"] <= answered, "a code was made after the cancel was answered"


def test_bad_messages_on_the_work_topic_are_dead_lettered_and_processing_goes_on(
    make_server: Any,
) -> None:
    server: Server = make_server(BULKOPS_PROCESSORS="1").start()
    wait_for(lambda: processor_pids(server), timeout=30, message="a processor")
    batch = {
        "operationId": "codegen_" + "e" * 32,
        "sponsorId": 64,
        "operationType": "BulkCodeGeneration",
        "batchIndex": 0,
        "startIndex": 0,
        "count": 10,
        "code": {"prefix": "X", "tierId": 1, "validityDays": 30, "serialBase": 0},
    }
    link = {**batch, "operationType": "BulkLinkSend", "code": None}
    bad = [
        (b"64", b"{not json"),
        (b"65", orjson.dumps(batch)),  # keyed by another sponsor
        (b"64", orjson.dumps(link)),  # a kind the processors do not do
    ]
    producer = Producer(producer_config(server.env["BULKOPS_KAFKA_BOOTSTRAP"]))
    for key, value in bad:
        producer.produce(server.topics.work.name, key=key, value=value)
    assert producer.flush(10) == 0
    letters = dead_letters(
        server.env["BULKOPS_KAFKA_BOOTSTRAP"], server.topics.dead_letter.name, expected=len(bad)
    )
    assert {letter.source_topic for letter in letters} == {server.topics.work.name}
    reasons = " | ".join(letter.reason for letter in letters)
    assert "does not match sponsorId" in reasons and "not processed here" in reasons
    client = server.client(sponsor_id=64)
    operation_id = submit(client, codes(2000, 500))
    status = wait_terminal(client, operation_id, timeout=60)
    assert status["status"] == "Completed" and status["metrics"]["successfulItems"] == 2000
    assert messages_on(server, server.topics.results.name) == 4, "nothing for the bad ones"
