"""Faults below the worker: the broker SIGKILLed mid-operation, ClickHouse refusing writes.

Each run ends with exact counts (every item once, every code unique, for sends each
recipient once in the simulator's ledger), and status lookups answer throughout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bulkops import localkafka
from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, probe_every_code_once, provider_env
from tests.integration.test_codegen_flow import all_codes, submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.integration.test_worker_faults import SKIPPED, log_of, processed
from tests.support import wait_for

BROKER_DOWN_SECONDS = 8.0


@contextmanager
def status_watch(client: httpx.Client, operation_id: str) -> Iterator[list[float]]:
    """Poll the operation's status the whole time; yields the latencies of the answers.
    Any answer other than 200 fails the test."""
    latencies: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=client.base_url, headers=client.headers, timeout=10) as own:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = own.get(f"/status/{operation_id}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                latencies.append(time.monotonic() - started)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                stop.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not failures, failures[:5]


def settled(client: httpx.Client, operation_id: str, seconds: float) -> int:
    """The operation's processed count once it has not changed for ``seconds``."""
    seen = [processed(client, operation_id), time.monotonic()]

    def still() -> bool:
        count = processed(client, operation_id)
        if count != seen[0]:
            seen[:] = [count, time.monotonic()]
        return time.monotonic() - seen[1] >= seconds

    wait_for(still, timeout=90, interval=0.2, message=f"progress still for {seconds}s")
    return int(seen[0])


def kill_broker_at(
    broker: localkafka.Broker,
    client: httpx.Client,
    operation_id: str,
    count: int,
    *,
    server: Server | None = None,
) -> None:
    """SIGKILL the broker once ``count`` items are counted; start it again after a while.
    With ``server``, its ``/readyz`` must say Kafka is the problem while the broker is down,
    and be ready again once it is back."""
    wait_for(
        lambda: processed(client, operation_id) >= count,
        timeout=180,
        interval=0.02,
        message=f"{count} processed",
    )
    assert localkafka.kill(broker.data_dir)
    down = time.monotonic()
    if server is not None:
        not_ready = wait_for(
            lambda: (
                (r := httpx.get(f"{server.base_url}/readyz", timeout=10)).status_code == 503
                and r.json()
            ),
            timeout=BROKER_DOWN_SECONDS,
            interval=0.5,
            message="/readyz reports the broker down",
        )
        assert not_ready["error"] == "NOT_READY" and "kafka:" in not_ready["message"]
        assert "clickhouse:" not in not_ready["message"]
    # The fault itself: the broker stays down this long.
    time.sleep(max(0.0, BROKER_DOWN_SECONDS - (time.monotonic() - down)))
    assert localkafka.start(broker.data_dir).bootstrap == broker.bootstrap
    if server is not None:
        wait_for(
            lambda: httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200,
            timeout=60,
            interval=0.5,
            message="/readyz ready again",
        )


def test_broker_killed_mid_code_generation(own_broker: localkafka.Broker, make_server: Any) -> None:
    server: Server = make_server(
        BULKOPS_KAFKA_BOOTSTRAP=own_broker.bootstrap, BULKOPS_MAX_ITEMS_PER_OPERATION="300000"
    ).start()
    client = server.client(sponsor_id=31)
    quantity = 300_000
    operation_id = submit(
        client,
        {"subscriptionTierId": 2, "quantity": quantity, "processing": {"batchSize": 1000}},
    )
    with status_watch(client, operation_id) as latencies:
        kill_broker_at(own_broker, client, operation_id, quantity // 4)
        back = time.monotonic()
        status = wait_terminal(client, operation_id, timeout=240)
    print(
        f"completed {time.monotonic() - back:.1f}s after the broker returned; "
        f"{len(latencies)} status reads, slowest {max(latencies):.3f}s"
    )
    assert status["status"] == "Completed", status
    assert status["metrics"]["processedItems"] == status["metrics"]["successfulItems"] == quantity
    codes = all_codes(client, operation_id)
    assert len(codes) == len({c["code"] for c in codes}) == quantity
    assert SKIPPED not in log_of(server)
    probe = probe_every_code_once(server, operation_id, 31, quantity)
    assert probe["all_items"] == quantity


def test_broker_killed_mid_link_send(
    own_broker: localkafka.Broker, make_server: Any, simulator: SimulatorThread
) -> None:
    simulator.simulator.config.rate_per_second = 1000
    server: Server = make_server(
        BULKOPS_KAFKA_BOOTSTRAP=own_broker.bootstrap,
        **provider_env(simulator, sender_rate_sms=1000),
    ).start()
    client = server.client(sponsor_id=32)
    total = 10_000
    operation_id = submit(client, body(total, "SMS", batchSize=100), "/send-links")
    with status_watch(client, operation_id) as latencies:
        kill_broker_at(own_broker, client, operation_id, total // 3, server=server)
        back = time.monotonic()
        status = wait_terminal(client, operation_id, timeout=240)
    print(
        f"completed {time.monotonic() - back:.1f}s after the broker returned; "
        f"{len(latencies)} status reads, slowest {max(latencies):.3f}s; "
        f"provider duplicates suppressed: {simulator.simulator.summary()['duplicatesSuppressed']}"
    )
    assert status["status"] == "Completed", status
    metrics = status["metrics"]
    assert metrics["processedItems"] == metrics["successfulItems"] == total
    keys = [entry["key"] for entry in simulator.simulator.entries()]
    assert len(keys) == total and set(keys) == {f"{operation_id}:{i}" for i in range(total)}
    assert SKIPPED not in log_of(server)


def test_clickhouse_refusing_writes_for_a_while(make_server: Any, tmp_path: Path) -> None:
    """Every insert fails (half of them after landing) for a while: the sink backs off and
    acknowledges nothing; afterwards the operation completes with every row exactly once."""
    trigger = tmp_path / "clickhouse-down"
    server: Server = make_server(
        BULKOPS_CLICKHOUSE_WRITE_FAULT_FILE=str(trigger),
        BULKOPS_MAX_ITEMS_PER_OPERATION="100000",
        # the sink can then be at most a window ahead of the count the test watches, so
        # the fault comes while results are still being stored
        BULKOPS_RELEASE_WINDOW_ITEMS="10000",
    ).start()
    client = server.client(sponsor_id=33)
    quantity = 100_000
    operation_id = submit(
        client,
        {"subscriptionTierId": 3, "quantity": quantity, "processing": {"batchSize": 500}},
    )
    with status_watch(client, operation_id):
        wait_for(
            lambda: processed(client, operation_id) >= quantity // 5,
            timeout=120,
            interval=0.02,
            message="20% processed",
        )
        trigger.touch()
        wait_for(
            lambda: log_of(server).count("injected fault") >= 4,
            timeout=60,
            message="inserts failing and retried",
        )
        wait_for(
            lambda: "landed, its answer lost" in log_of(server),
            timeout=60,
            message="an insert that landed but answered with an error",
        )
        # Nothing is counted while nothing can be stored (once what was stored before the
        # fault is counted): the count settles below the total and stays there.
        stalled = settled(client, operation_id, seconds=3)
        assert stalled < quantity
        assert client.get(f"/status/{operation_id}").json()["data"]["status"] == "Processing"
        trigger.unlink()
        back = time.monotonic()
        status = wait_terminal(client, operation_id, timeout=180)
    print(
        f"completed {time.monotonic() - back:.1f}s after writes were accepted again; "
        f"{log_of(server).count('injected fault')} inserts failed meanwhile"
    )
    assert status["status"] == "Completed", status
    assert status["metrics"]["processedItems"] == status["metrics"]["successfulItems"] == quantity
    probe = probe_every_code_once(server, operation_id, 33, quantity)
    assert probe["all_items"] == quantity
