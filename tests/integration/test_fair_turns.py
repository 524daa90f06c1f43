"""Fair turns on a partition: a small operation does not wait for the whole of a big one
whose sponsor's key lands on the same partition (release windows, streams/agents/release.py)."""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from core.topics import sponsor_key
from tests.integration.conftest import Server, probe_every_code_once
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_worker_faults import processed

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
