"""Retry only what failed, as a new linked operation, on the real broker and simulator."""

from __future__ import annotations

from typing import Any

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body


def test_retry_failed_ends_all_delivered_exactly_once(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=50)).start()
    client = server.client(sponsor_id=61)
    simulator.simulator.config.transient_failure_rate = 0.4
    payload = body(150, "SMS", batchSize=25, retryAttempts=0)
    payload["recipients"][3]["phoneNumber"] = "+905329999999"
    original = simulator.simulator.decide

    def decide(channel: str, sender: str, key: str, to: str) -> tuple[int, str, float | None]:
        if to == "+905329999999":
            return 400, "INVALID_RECIPIENT", None  # permanent: never retried
        return original(channel, sender, key, to)

    simulator.simulator.decide = decide  # type: ignore[method-assign]
    operation_id = submit(client, payload, "/send-links")
    first = wait_terminal(client, operation_id, timeout=60)["metrics"]
    assert first["failedItems"] > 1

    simulator.simulator.config.transient_failure_rate = 0.0
    response = client.post(f"/retry/{operation_id}")
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data["originalOperationId"] == operation_id
    assert data["failedItemsCount"] == first["failedItems"]
    assert data["nonRetryableItemsCount"] == 1
    assert data["retryableItemsCount"] == first["failedItems"] - 1
    again = client.post(f"/retry/{operation_id}")
    assert again.status_code == 202
    assert again.json()["data"]["retryOperationId"] == data["retryOperationId"]

    retry = wait_terminal(client, data["retryOperationId"], timeout=60)
    assert retry["status"] == "Completed"
    assert retry["metrics"]["successfulItems"] == data["retryableItemsCount"]
    keys = [e["key"] for e in simulator.simulator.entries()]
    assert len(keys) == len(set(keys)) == 149  # every valid recipient once, under its own item id
    assert set(keys) == {f"{operation_id}:{i}" for i in range(150) if i != 3}

    nothing = client.post(f"/retry/{data['retryOperationId']}")
    assert nothing.status_code == 409 and nothing.json()["error"] == "NOTHING_TO_RETRY"
    filtered = client.post(f"/retry/{operation_id}", params={"errorCode": "NO_SUCH_CODE"})
    assert filtered.status_code == 409


def test_retry_refuses_running_foreign_and_failure_free_operations(server: Server) -> None:
    client = server.client(sponsor_id=62)
    operation_id = submit(client, {"subscriptionTierId": 1, "quantity": 10})
    wait_terminal(client, operation_id)
    response = client.post(f"/retry/{operation_id}")
    assert response.status_code == 409 and response.json()["error"] == "NOTHING_TO_RETRY"
    assert server.client(sponsor_id=63).post(f"/retry/{operation_id}").status_code == 404
    assert client.post("/retry/bulk_" + "0" * 32).status_code == 404
    assert (
        client.post(f"/retry/{operation_id}", params={"errorCategory": "Nope"}).status_code == 422
    )
