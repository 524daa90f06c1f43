"""Two worker processes sharing the partitions, one SIGKILLed mid-send (ClickHouse server).

Embedded chDB lets one process own the data, so this runs only where a ClickHouse server
is at ``BULKOPS_TEST_CLICKHOUSE_URL`` (``http://user:pass@host:8123``; each run uses a
database of its own and drops it). docs/operations.md gives the compose procedure.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.integration.test_worker_faults import processed
from tests.support import wait_for

HTTP_URL = os.environ.get("BULKOPS_TEST_CLICKHOUSE_URL", "")
pytestmark = [
    pytest.mark.clickhouse_http,
    pytest.mark.skipif(not HTTP_URL, reason="BULKOPS_TEST_CLICKHOUSE_URL is not set"),
]

SENDER_RATE = 400  # SMS per second for the one sender, whatever the number of workers
SPONSORS = range(51, 59)  # eight sponsors, so both workers have sends
PER_SPONSOR = 1_500


@pytest.fixture
def database() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    client = clickhouse_connect.get_client(dsn=HTTP_URL)
    try:
        client.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
    finally:
        client.close()


def worker(api: Server, tmp_path: Path, name: str) -> Server:
    return Server(
        env={
            **api.env,
            "BULKOPS_INSTANCE_ID": name,
            "BULKOPS_WORKER_DATA_DIR": str(tmp_path / name),
            "BULKOPS_SESSION_TIMEOUT_SECONDS": "6",
        },
        log_path=tmp_path / f"worker-{name}.log",
        port=0,
        command="worker",
    )


def owned_now(server: Server) -> int:
    """Item partitions the worker said it owns at its latest assignment."""
    found = re.findall(r"pacing: (\d+) of \d+ item partitions", server.log_tail(400))
    return int(found[-1]) if found else 0


def busiest_second(stamps: list[float]) -> int:
    """The most sends that fell within any one second."""
    stamps = sorted(stamps)
    most, start = 0, 0
    for end, at in enumerate(stamps):
        while at - stamps[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_a_killed_worker_s_partitions_move_and_the_sender_rate_holds(
    make_server: Any, simulator: SimulatorThread, database: str, tmp_path: Path
) -> None:
    simulator.simulator.config.rate_per_second = SENDER_RATE * 2  # 429s would hide excess
    api: Server = make_server(
        "api",
        BULKOPS_CLICKHOUSE_DSN=HTTP_URL,
        BULKOPS_CLICKHOUSE_DATABASE=database,
        BULKOPS_PARTITIONS="8",
        **provider_env(simulator, sender_rate_sms=SENDER_RATE, sponsor_rate_per_second=1000),
    )
    first, second = worker(api, tmp_path, "w1"), worker(api, tmp_path, "w2")
    try:
        first.start(ready_when_logged="pacing: ")
        second.start(ready_when_logged="pacing: ")
        wait_for(
            lambda: owned_now(first) + owned_now(second) == 8 and owned_now(second) > 0,
            timeout=60,
            message="both workers own partitions",
        )
        api.start()
        clients = {sponsor: api.client(sponsor_id=sponsor) for sponsor in SPONSORS}
        operations = {
            sponsor: submit(client, body(PER_SPONSOR, "SMS", batchSize=50), "/send-links")
            for sponsor, client in clients.items()
        }
        total = PER_SPONSOR * len(SPONSORS)
        wait_for(
            lambda: sum(processed(clients[s], op) for s, op in operations.items()) >= total * 0.3,
            timeout=180,
            message="30% sent",
        )
        second.stop(kill=True)
        wait_for(lambda: owned_now(first) == 8, timeout=60, message="w1 owns every partition")

        for sponsor, operation_id in operations.items():
            status = wait_terminal(clients[sponsor], operation_id, timeout=300)
            assert status["status"] == "Completed", status
            assert status["metrics"]["successfulItems"] == PER_SPONSOR
    finally:
        for process in (first, second):
            process.stop()

    entries = simulator.simulator.entries()
    keys = [entry["key"] for entry in entries]
    expected = {f"{op}:{i}" for op in operations.values() for i in range(PER_SPONSOR)}
    assert len(keys) == len(expected) and set(keys) == expected  # each recipient once
    # The sender's rate held across both workers, the kill and the rebalance (one burst of
    # a tenth of a second's tokens per worker at most on top).
    assert busiest_second([entry["accepted_at"] for entry in entries]) <= SENDER_RATE * 1.2
