"""``/metrics`` scraped during a real operation (broker, worker, chDB, provider simulator):
the counters move while it runs, the consumer lag of the worker group returns to 0 once it
is done, and with ``BULKOPS_LOG_FORMAT=json`` the server's log lines are JSON objects that
carry the operation's id."""

from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.support import wait_for

SENDS = 400


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def test_metrics_move_during_an_operation_and_the_lag_returns_to_zero(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(
        BULKOPS_LOG_FORMAT="json", **provider_env(simulator, sender_rate_sms=100)
    ).start()
    client = server.client(sponsor_id=31)
    operation_id = submit(client, body(SENDS, batchSize=20), "/send-links")

    seen: list[float] = []

    def counted_some() -> bool:
        seen.append(total(scrape(server), "bulkops_items_processed_total", outcome="success"))
        return seen[-1] > 0

    wait_for(counted_some, timeout=60, interval=0.2, message="items counted")
    status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Completed", status

    after = scrape(server)
    assert total(after, "bulkops_items_processed_total", outcome="success") == SENDS
    assert seen[-1] < SENDS, "the counter was read moving, before the operation ended"
    assert total(after, "bulkops_provider_requests_total", channel="SMS", result="success") == SENDS
    assert total(after, "bulkops_provider_latency_seconds_count", channel="SMS") == SENDS
    assert total(after, "bulkops_clickhouse_rows_written_total", table="items") >= SENDS
    assert total(after, "bulkops_clickhouse_write_seconds_count", table="operations") >= 1
    assert total(after, "bulkops_operations_finished_total", status="Completed") == 1
    assert total(after, "bulkops_operations", status="Completed") == 1
    route = "/api/v1/bulk-operations/status/{operationId}"
    assert total(after, "bulkops_http_request_duration_seconds_count", route=route) >= 1
    worker_group = f"{server.env['BULKOPS_TOPIC_PREFIX']}-worker"
    processor_group = f"{worker_group}-processors"
    for group in (worker_group, processor_group):
        assert total(after, "bulkops_consumer_lag_probe_ok", group=group) == 1
    lag_partitions = {
        (dict(labels)["group"], dict(labels)["topic"], dict(labels)["partition"])
        for (name, labels) in after
        if name == "bulkops_consumer_lag_messages"
    }
    assert lag_partitions == {
        (worker_group, topic, str(p)) for topic in server.topics.consumed() for p in range(4)
    } | {(processor_group, server.topics.work.name, str(p)) for p in range(4)}, (
        "every partition of every topic the worker group and the processors' group read"
    )
    assert operation_id not in httpx.get(f"{server.base_url}/metrics").text

    wait_for(
        lambda: total(scrape(server), "bulkops_consumer_lag_messages") == 0,
        timeout=60,
        interval=1,
        message="worker group lag back to 0",
    )

    records = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    about_it = [r for r in records if r.get("operation_id") == operation_id]
    assert any(r["message"].startswith(f"operation {operation_id}: Completed") for r in about_it)
    assert all(r.get("sponsor_id") in (None, 31) for r in about_it)
    assert any(r.get("sponsor_id") == 31 for r in about_it)
