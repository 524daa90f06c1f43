"""Auto-pause on the real broker, worker, chDB and provider simulator: a campaign whose
recipients the provider refuses pauses itself with the reason in its status and an
``operation_paused`` webhook; resumed, it goes on and ends with exact counts."""

from __future__ import annotations

from typing import Any

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Receiver, Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.support import settles, wait_for


def test_a_failing_campaign_pauses_itself_and_resumes(
    make_server: Any,
    simulator: SimulatorThread,
    receiver: Receiver,
) -> None:
    server: Server = make_server(
        **provider_env(simulator, sender_rate_sms=400),
        BULKOPS_WEBHOOK_ALLOW_PRIVATE="true",
    ).start()
    simulator.simulator.config.permanent_failure_rate = 1.0  # every recipient refused
    client = server.client(sponsor_id=71)
    total = 2000
    request = body(
        total,
        "SMS",
        batchSize=20,
        maxConcurrency=4,
        retryAttempts=0,
        pauseOnErrorRate=0.5,
        pauseOnErrorWindow=100,
        callbackUrl=receiver.url,
    )
    operation_id = submit(client, request, "/send-links")

    def paused() -> dict[str, Any] | None:
        data = client.get(f"/status/{operation_id}").json()["data"]
        return data if data["status"] == "Paused" else None

    status = wait_for(paused, timeout=60, message="paused by itself")
    assert status["pauseReason"].startswith("AUTO_PAUSED: ")
    assert "Paused by itself" in status["statusMessage"]
    wait_for(
        lambda: any(r["event"] == "operation_paused" for r in receiver.received),
        timeout=30,
        message="operation_paused webhook",
    )
    # batches in flight finish; then the provider sees no more attempts
    refused = settles(lambda: simulator.simulator.summary()["failures"], 2.0, timeout=30)
    assert refused < total / 2, "a dead campaign stops long before its end"

    simulator.simulator.config.permanent_failure_rate = 0.0
    assert client.post(f"/resume/{operation_id}").status_code == 200
    final = wait_terminal(client, operation_id, timeout=120)
    assert final["status"] == "PartiallyCompleted"
    metrics = final["metrics"]
    assert metrics["processedItems"] == total
    # every send the provider refused is one failed item, and nothing is counted twice
    assert metrics["failedItems"] == refused
    assert metrics["successfulItems"] == total - refused
    assert simulator.simulator.summary()["delivered"] == total - refused
    assert final["pauseReason"] is None
