"""Fair turns on a partition: a small operation does not wait for the whole of a big one
whose sponsor's key lands on the same partition (release windows, streams/agents/release.py),
and of two operations of one sponsor the one of higher priority is served first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from core.topics import sponsor_key
from tests.integration.conftest import Server, probe_every_code_once
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_worker_faults import processed
from tests.support import wait_for

BIG_SPONSOR = 61
PARTITIONS = 4


def same_partition_as(sponsor_id: int) -> int:
    every = list(range(PARTITIONS))
    home = DefaultPartitioner()(sponsor_key(sponsor_id), every, every)
    return next(
        s
        for s in range(sponsor_id + 1, sponsor_id + 1000)
        if DefaultPartitioner()(sponsor_key(s), every, every) == home
    )


def test_a_small_operation_does_not_wait_for_a_big_one_on_its_partition(
    make_server: Any,
) -> None:
    server: Server = make_server(
        BULKOPS_MAX_ITEMS_PER_OPERATION="300000", BULKOPS_RELEASE_WINDOW_ITEMS="20000"
    ).start()
    big_client = server.client(sponsor_id=BIG_SPONSOR)
    small_client = server.client(sponsor_id=same_partition_as(BIG_SPONSOR))
    quantity = 300_000
    big = submit(
        big_client,
        {"subscriptionTierId": 4, "quantity": quantity, "processing": {"batchSize": 1000}},
    )
    small = submit(small_client, {"subscriptionTierId": 1, "quantity": 100})
    assert wait_terminal(small_client, small, timeout=120)["status"] == "Completed"
    when_small_ended = processed(big_client, big)
    assert when_small_ended < quantity // 2, (
        f"the small operation ended only once the big one had {when_small_ended:,} items"
    )

    status = wait_terminal(big_client, big, timeout=300)
    assert status["status"] == "Completed", status
    assert status["metrics"]["processedItems"] == status["metrics"]["successfulItems"] == quantity
    probe_every_code_once(server, big, BIG_SPONSOR, quantity)


def test_a_higher_priority_operation_overtakes_a_lower_one_of_the_same_sponsor(
    make_server: Any,
) -> None:
    server: Server = make_server(
        BULKOPS_MAX_ITEMS_PER_OPERATION="100000", BULKOPS_RELEASE_WINDOW_ITEMS="5000"
    ).start()
    client = server.client(sponsor_id=BIG_SPONSOR)
    body = {"subscriptionTierId": 2, "quantity": 60_000, "processing": {"batchSize": 500}}
    low = submit(client, body | {"priority": 1})
    wait_for(lambda: processed(client, low) >= 6000, timeout=60, message="the low one ahead")
    high = submit(client, body | {"priority": 9})
    assert client.get(f"/status/{high}").json()["data"]["status"] in ("Queued", "Processing")
    ended = {operation: wait_terminal(client, operation, timeout=300) for operation in (high, low)}
    assert {s["status"] for s in ended.values()} == {"Completed"}
    finished = {op: datetime.fromisoformat(s["completedAt"]) for op, s in ended.items()}
    assert finished[high] < finished[low], (
        "the priority-9 operation, submitted once the other had done a tenth, should finish first"
    )
