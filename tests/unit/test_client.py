from __future__ import annotations

import httpx
import pytest

from bulkops.client import BulkopsClient, BulkopsError, next_interval


def status(pct: float, state: str = "Processing", hint: float = 0.0) -> dict:
    return {"status": state, "metrics": {"progressPercentage": pct}, "pollAfterSeconds": hint}


def test_backoff_follows_the_guide() -> None:
    assert next_interval(2.0, status(10)) == 2.0
    assert next_interval(2.0, status(30)) == pytest.approx(2.4)
    assert next_interval(4.5, status(30)) == 5.0
    assert next_interval(8.0, status(60)) == 10.0
    assert next_interval(2.0, status(10, hint=5)) == 5.0
    assert next_interval(2.0, status(10, hint=60)) == 10.0


def test_wait_polls_until_terminal_and_reports_progress() -> None:
    answers = iter([status(0), status(40), status(80), status(100, "Completed")])
    seen: list[float] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer t"
        return httpx.Response(200, json={"success": True, "data": next(answers)})

    with BulkopsClient(
        "http://api", "t", transport=httpx.MockTransport(handler), sleep=sleeps.append
    ) as client:
        final = client.wait(
            "codegen_x", on_progress=lambda s: seen.append(s["metrics"]["progressPercentage"])
        )
    assert final["status"] == "Completed"
    assert seen == [0, 40, 80, 100]
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)


def test_errors_come_back_with_their_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422, json={"success": False, "error": "VALIDATION_FAILED", "message": "quantity: bad"}
        )

    client = BulkopsClient("http://api", "t", transport=httpx.MockTransport(handler))
    with client, pytest.raises(BulkopsError) as info:
        client.generate_codes(subscriptionTierId=1, quantity=0)
    assert info.value.status_code == 422 and info.value.error == "VALIDATION_FAILED"
