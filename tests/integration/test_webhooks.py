"""Completion webhooks: signed, retried, visible in status."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from tests.integration.conftest import Receiver, Server
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.support import wait_for


def test_completion_webhook_is_signed_retried_and_visible(
    make_server: Any, receiver: Receiver
) -> None:
    server: Server = make_server(
        BULKOPS_WEBHOOK_ALLOW_PRIVATE="true", BULKOPS_WEBHOOK_BACKOFF_SECONDS="0.2"
    ).start()
    receiver.failures_left["operation_completed"] = 2
    client = server.client(sponsor_id=81)
    secret = client.get("/webhook-secret").json()["data"]["secret"]
    operation_id = submit(
        client,
        {
            "subscriptionTierId": 1,
            "quantity": 4000,
            "processing": {
                "batchSize": 100,
                "callbackUrl": receiver.url,
                "sendProgressNotifications": True,
            },
        },
    )
    wait_terminal(client, operation_id)

    def delivered() -> dict[str, Any] | None:
        data = client.get(f"/status/{operation_id}").json()["data"]
        return data if data["webhookState"] == "delivered" else None

    status = wait_for(delivered, timeout=30, message="webhook delivered")
    completed = [r for r in receiver.received if r["event"] == "operation_completed"]
    assert len(completed) == 3, "two 500s, then delivered"
    assert len({r["delivery"] for r in completed}) == 1, "retries keep their delivery id"
    for request in receiver.received:
        expected = hmac.new(
            secret.encode(), request["timestamp"].encode() + b"." + request["body"], hashlib.sha256
        ).hexdigest()
        assert request["signature"] == f"sha256={expected}"
    payload = orjson.loads(completed[-1]["body"])
    assert payload["operationId"] == operation_id
    assert payload["status"] == "Completed" and payload["successfulItems"] == 4000
    attempts = [a for a in status["webhookAttempts"] if a["event"] == "operation_completed"]
    assert [(a["attempt"], a["statusCode"], a["delivered"]) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 204, True),
    ]
    assert {r["event"] for r in receiver.received} >= {"operation_completed"}
