"""Cancel, pause, resume and rethrottle answer once the worker's snapshot confirms them:
the API waits on the status view, woken by each snapshot (not polling it), up to
``BULKOPS_CONTROL_ACK_TIMEOUT_SECONDS``, then says 504 with what to do."""

from __future__ import annotations

import threading
import time
from typing import Any

from api.status_view import StatusView
from schemas.status import OperationSnapshot
from tests.unit.conftest import FakeMessageSink, api_client, auth

BASE = "/api/v1/bulk-operations"
OPERATION_ID = "codegen_" + "c" * 32


def snapshot(version: int, **fields: Any) -> OperationSnapshot:
    return OperationSnapshot.model_validate(
        {
            "operationId": OPERATION_ID,
            "sponsorId": 7,
            "operationType": "BulkCodeGeneration",
            "operationName": "n",
            "requestedBy": "u",
            "status": "Processing",
            "totalItems": 10,
            "createdAt": "2026-01-01T00:00:00Z",
            "lastUpdated": f"2026-01-01T00:00:{version:02d}Z",
            "currentPhase": "p",
            "statusMessage": "m",
            "version": version,
            **fields,
        }
    )


def cancelled(s: OperationSnapshot) -> bool:
    return s.stop_reason == "CANCELLED"


async def test_a_waiter_wakes_on_the_snapshot_that_confirms() -> None:
    view = StatusView()
    view.apply(snapshot(1))
    # As the status follower does, from its own thread: one snapshot that does not confirm,
    # then the one that does.
    threading.Timer(0.05, view.apply, [snapshot(2)]).start()
    threading.Timer(0.1, view.apply, [snapshot(3, stopReason="CANCELLED")]).start()
    started = time.monotonic()
    confirmed = await view.until(OPERATION_ID, cancelled, 10)
    assert confirmed is not None and confirmed.version == 3
    assert time.monotonic() - started < 5


async def test_a_waiter_gives_up_at_its_deadline() -> None:
    view = StatusView()
    view.apply(snapshot(1))
    threading.Timer(0.05, view.apply, [snapshot(2)]).start()
    started = time.monotonic()
    assert await view.until(OPERATION_ID, cancelled, 0.3) is None
    assert time.monotonic() - started >= 0.3
    assert await view.until("codegen_" + "d" * 32, cancelled, 0.05) is None  # never seen


def test_a_control_the_worker_does_not_confirm_is_504(sink: FakeMessageSink) -> None:
    with api_client(sink, control_ack_timeout_seconds=0.3) as client:
        view = client.app.state.status_view  # type: ignore[attr-defined]
        view.apply(snapshot(1))
        for action in ("cancel", "pause"):
            answer = client.post(f"{BASE}/{action}/{OPERATION_ID}", headers=auth())
            assert answer.status_code == 504, answer.text
            body = answer.json()
            assert body["success"] is False
            assert body["error"] == f"{action.upper()}_NOT_CONFIRMED"
            assert "poll status" in body["message"]
    assert [topic for topic, _, _ in sink.sent] == ["unit.control", "unit.control"]
