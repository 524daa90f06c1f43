"""Completion webhooks: signed, retried, visible in status."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Server
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.support import wait_for


class Receiver:
    """A webhook endpoint on loopback that answers from a script and keeps what it got."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures_left = {"operation_completed": 2}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event = self.headers["X-Bulkops-Event"]
                receiver.received.append(
                    {
                        "event": event,
                        "body": body,
                        "timestamp": self.headers["X-Bulkops-Timestamp"],
                        "signature": self.headers["X-Bulkops-Signature"],
                        "delivery": self.headers["X-Bulkops-Delivery"],
                    }
                )
                left = receiver.failures_left.get(event, 0)
                receiver.failures_left[event] = max(0, left - 1)
                self.send_response(500 if left else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bulk"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def test_completion_webhook_is_signed_retried_and_visible(
    make_server: Any, receiver: Receiver
) -> None:
    server: Server = make_server(
        BULKOPS_WEBHOOK_ALLOW_PRIVATE="true", BULKOPS_WEBHOOK_BACKOFF_SECONDS="0.2"
    ).start()
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
