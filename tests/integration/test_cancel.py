"""Cancel on the real broker: no new item starts once the cancel is acknowledged."""

from __future__ import annotations

from typing import Any

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import all_codes, submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.support import wait_for


def test_cancel_mid_run_stops_sending(make_server: Any, simulator: SimulatorThread) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=1500)).start()
    client = server.client(sponsor_id=41)
    total = 50_000
    operation_id = submit(
        client, body(total, "SMS", batchSize=500, maxConcurrency=20), "/send-links"
    )
    wait_for(
        lambda: simulator.simulator.summary()["delivered"] > 1000,
        timeout=120,
        message="sending under way",
    )
    response = client.post(f"/cancel/{operation_id}")
    assert response.status_code == 200, response.text
    delivered_at_ack = simulator.simulator.summary()["delivered"]
    data = response.json()["data"]
    assert data["finalStatus"] == "Cancelled"
    assert data["processedItems"] + data["remainingItems"] == total

    status = wait_terminal(client, operation_id, timeout=120)
    metrics = status["metrics"]
    assert status["status"] == "Cancelled"
    delivered = simulator.simulator.summary()["delivered"]
    assert delivered - delivered_at_ack <= 20, "only sends in flight at the ack may settle"
    assert metrics["successfulItems"] == delivered < total
    assert metrics["successfulItems"] + metrics["skippedItems"] + metrics["failedItems"] == total
    assert "CANCELLED" in {e["errorCode"] for e in metrics["errors"]}

    again = client.post(f"/cancel/{operation_id}")
    assert again.status_code == 409 and again.json()["error"] == "OPERATION_FINISHED"


def test_cancel_code_generation_keeps_what_was_made(make_server: Any) -> None:
    quantity = 300_000  # 3,000 batches: generation outruns the cancel only briefly
    server: Server = make_server(BULKOPS_MAX_ITEMS_PER_OPERATION=str(quantity)).start()
    client = server.client(sponsor_id=42)
    operation_id = submit(
        client, {"subscriptionTierId": 1, "quantity": quantity, "processing": {"batchSize": 100}}
    )
    wait_for(
        lambda: (
            client.get(f"/status/{operation_id}").json()["data"]["metrics"]["processedItems"] > 0
        ),
        timeout=60,
        message="codes under way",
    )
    assert client.post(f"/cancel/{operation_id}").status_code == 200
    status = wait_terminal(client, operation_id, timeout=120)
    assert status["status"] == "Cancelled"
    made = status["metrics"]["successfulItems"]
    assert 0 < made < quantity
    assert len(all_codes(client, operation_id)) == made


def test_cancel_racing_completion_has_one_winner(server: Server) -> None:
    client = server.client(sponsor_id=43)
    for _ in range(3):
        operation_id = submit(
            client, {"subscriptionTierId": 1, "quantity": 200, "processing": {"batchSize": 10}}
        )
        response = client.post(f"/cancel/{operation_id}")
        status = wait_terminal(client, operation_id)
        metrics = status["metrics"]
        assert metrics["processedItems"] == 200
        if response.status_code == 200:
            assert status["status"] == "Cancelled"
        else:
            assert response.status_code == 409, response.text
            assert status["status"] == "Completed" and metrics["successfulItems"] == 200
        assert len(all_codes(client, operation_id)) == metrics["successfulItems"]


def test_cancel_of_unknown_or_foreign_operations_is_404(server: Server) -> None:
    owner = server.client(sponsor_id=44)
    operation_id = submit(owner, {"subscriptionTierId": 1, "quantity": 10})
    wait_terminal(owner, operation_id)
    other = server.client(sponsor_id=45)
    assert other.post(f"/cancel/{operation_id}").status_code == 404
    assert owner.post("/cancel/codegen_" + "0" * 32).status_code == 404
    finished = owner.post(f"/cancel/{operation_id}")
    assert finished.status_code == 409
    assert finished.json()["details"] == {"status": "Completed"}
