"""Operator alerts on the real broker, worker, chDB and provider simulator: a campaign the
provider refuses raises one ``failure_rate`` alert, and an operation that cannot store its
results (ClickHouse refusing writes) raises a ``stalled`` one; each arrives as a webhook
signed with the operators' secret and shows on ``/metrics``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from api.auth import Role
from bulkops.simulator import SimulatorThread
from core.webhooks import sign
from tests.integration.conftest import Receiver, Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.integration.test_metrics import scrape, total
from tests.support import wait_for


def alerts_received(receiver: Receiver, server: Server) -> list[dict[str, Any]]:
    """The operation_alert webhooks received, each checked against the operators' secret."""
    admin = server.client(sponsor_id=None, role=Role.ADMIN)
    secret = admin.get("/webhook-secret").json()["data"]["secret"]
    bodies = []
    for delivery in receiver.received:
        if delivery["event"] != "operation_alert":
            continue
        assert delivery["signature"] == sign(secret, delivery["timestamp"], delivery["body"])
        bodies.append(json.loads(delivery["body"]))
    return bodies


def test_a_failing_campaign_raises_one_failure_rate_alert(
    make_server: Any, simulator: SimulatorThread, receiver: Receiver
) -> None:
    server: Server = make_server(
        **provider_env(simulator, sender_rate_sms=500),
        BULKOPS_ALERT_FAILURE_RATE="0.5",
        BULKOPS_ALERT_MIN_ITEMS="50",
        BULKOPS_ALERT_WEBHOOK_URL=receiver.url,
    ).start()
    simulator.simulator.config.permanent_failure_rate = 1.0
    client = server.client(sponsor_id=41)
    operation_id = submit(client, body(300, batchSize=20, retryAttempts=0), "/send-links")
    status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Failed" and status["metrics"]["failedItems"] == 300

    (alert,) = wait_for(
        lambda: alerts_received(receiver, server), timeout=30, message="operation_alert"
    )
    assert (alert["alert"], alert["operationId"], alert["sponsorId"]) == (
        "failure_rate", operation_id, 41,
    )  # fmt: skip
    assert alert["message"].endswith("(100%; the alert threshold is 50%)")
    assert total(scrape(server), "bulkops_operation_alerts_total", kind="failure_rate") == 1
    assert f"operation {operation_id}: ALERT failure_rate" in server.log_path.read_text()


def test_an_operation_that_cannot_store_its_results_raises_a_stall_alert(
    make_server: Any, receiver: Receiver, tmp_path: Path
) -> None:
    trigger = tmp_path / "clickhouse-down"
    server: Server = make_server(
        BULKOPS_CLICKHOUSE_WRITE_FAULT_FILE=str(trigger),
        BULKOPS_MAX_ITEMS_PER_OPERATION="100000",
        BULKOPS_RELEASE_WINDOW_ITEMS="10000",
        BULKOPS_ALERT_STALLED_SECONDS="3",
        BULKOPS_ALERT_CHECK_INTERVAL_SECONDS="0.5",
        BULKOPS_ALERT_WEBHOOK_URL=receiver.url,
    ).start()
    client = server.client(sponsor_id=43)
    quantity = 100_000
    operation_id = submit(
        client, {"subscriptionTierId": 3, "quantity": quantity, "processing": {"batchSize": 500}}
    )

    def processed() -> int:
        return int(
            client.get(f"/status/{operation_id}").json()["data"]["metrics"]["processedItems"]
        )

    wait_for(lambda: processed() > 0, timeout=60, interval=0.05, message="started")
    trigger.touch()
    (alert,) = wait_for(
        lambda: alerts_received(receiver, server), timeout=60, message="stall alert"
    )
    assert (alert["alert"], alert["operationId"], alert["status"]) == (
        "stalled", operation_id, "Processing",
    )  # fmt: skip
    assert alert["message"].startswith("no item counted for ")
    assert total(scrape(server), "bulkops_operation_alerts_total", kind="stalled") == 1

    trigger.unlink()
    status = wait_terminal(client, operation_id, timeout=180)
    assert status["status"] == "Completed"
    assert status["metrics"]["successfulItems"] == quantity
    assert len(alerts_received(receiver, server)) == 1, "one alert for the one stall"
    assert httpx.get(f"{server.base_url}/readyz").status_code == 200
