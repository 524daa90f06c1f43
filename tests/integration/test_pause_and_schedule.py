"""Pause/resume and schedules on the real broker, ClickHouse and the provider simulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from api.auth import Role
from bulkops.simulator import SimulatorThread
from core.schedule import WEEKDAYS
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import all_codes, submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.support import settles, wait_for


def _status(client: Any, operation_id: str) -> dict[str, Any]:
    return dict(client.get(f"/status/{operation_id}").json()["data"])


def _steady(read: Any, seconds: float) -> int:
    """The value ``read`` returns, checked to stay the same for ``seconds`` (a pause holds)."""
    first = read()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert read() == first, "nothing may be sent while paused"
        time.sleep(0.05)
    return int(first)


def test_pause_then_resume_ends_with_exact_counts(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=800)).start()
    client = server.client(sponsor_id=61)
    total = 6000
    operation_id = submit(
        client, body(total, "SMS", batchSize=50, maxConcurrency=10), "/send-links"
    )
    wait_for(
        lambda: simulator.simulator.summary()["delivered"] > 500,
        timeout=120,
        message="sending under way",
    )
    paused = client.post(f"/pause/{operation_id}")
    assert paused.status_code == 200, paused.text
    assert paused.json()["data"]["status"] == "Paused"
    delivered_at_ack = simulator.simulator.summary()["delivered"]
    assert client.post(f"/pause/{operation_id}").json()["error"] == "ALREADY_PAUSED"

    # Batches already sending finish (a few, of 50 items); then nothing moves.
    at_rest = settles(lambda: simulator.simulator.summary()["delivered"], 1.0, timeout=30)
    assert at_rest - delivered_at_ack <= 4 * 50
    held = _steady(lambda: simulator.simulator.summary()["delivered"], 2.0)
    wait_for(
        lambda: _status(client, operation_id)["metrics"]["processedItems"] == held,
        timeout=10,
        message="status counts what was sent",
    )
    status = _status(client, operation_id)
    assert status["status"] == "Paused" and status["pausedAt"]
    assert status["metrics"]["estimatedTimeRemaining"] is None
    assert any("/resume/" in step for step in status["nextSteps"])
    assert held < total

    resumed = client.post(f"/resume/{operation_id}")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["data"]["status"] == "Processing"
    assert client.post(f"/resume/{operation_id}").json()["error"] == "NOT_PAUSED"
    final = wait_terminal(client, operation_id, timeout=120)
    assert final["status"] == "Completed", final
    assert final["metrics"]["processedItems"] == final["metrics"]["successfulItems"] == total
    ledger = simulator.simulator.summary()
    assert ledger["delivered"] == total and ledger["duplicatesSuppressed"] == 0


def test_pause_and_resume_code_generation_keeps_codes_exact(make_server: Any) -> None:
    """Codes made before the pause are still stored after it (the sink trails the generator
    by up to seconds), so what is exact here is the end: every code once, none twice."""
    server: Server = make_server(BULKOPS_MAX_ITEMS_PER_OPERATION="2000000").start()
    client = server.client(sponsor_id=62)
    quantity = 500_000  # several seconds of generation: the pause lands mid-run
    operation_id = submit(
        client, {"subscriptionTierId": 2, "quantity": quantity, "processing": {"batchSize": 500}}
    )
    wait_for(
        lambda: _status(client, operation_id)["metrics"]["processedItems"] > 0,
        timeout=60,
        message="codes under way",
    )
    response = client.post(f"/pause/{operation_id}")
    if response.status_code == 409:  # finished before the pause: nothing left to show
        assert _status(client, operation_id)["status"] == "Completed"
        return
    assert response.status_code == 200, response.text
    processed = settles(
        lambda: _status(client, operation_id)["metrics"]["processedItems"], 2.0, timeout=90
    )
    if processed == quantity:
        return  # everything was made before the pause reached the generator
    assert _status(client, operation_id)["status"] == "Paused"
    assert client.post(f"/resume/{operation_id}").status_code == 200
    final = wait_terminal(client, operation_id, timeout=180)
    assert final["status"] == "Completed"
    assert final["metrics"]["successfulItems"] == final["metrics"]["processedItems"] == quantity
    codes = all_codes(client, operation_id)
    assert len(codes) == len({c["code"] for c in codes}) == quantity


def test_a_pause_stops_a_million_code_operation_within_a_second(make_server: Any) -> None:
    """No batch starts minting more than a second after the pause answer: the release window
    keeps at most a window of batches queued, and each is held back when it comes up."""
    server: Server = make_server(BULKOPS_MAX_ITEMS_PER_OPERATION="1000000").start()
    client = server.client(sponsor_id=63)
    quantity = 1_000_000
    operation_id = submit(
        client, {"subscriptionTierId": 2, "quantity": quantity, "processing": {"batchSize": 1000}}
    )
    wait_for(
        lambda: _status(client, operation_id)["metrics"]["processedItems"] >= 20_000,
        timeout=60,
        message="codes under way",
    )
    response = client.post(f"/pause/{operation_id}")
    answered = datetime.now(UTC)
    assert response.status_code == 200, response.text
    processed = settles(
        lambda: _status(client, operation_id)["metrics"]["processedItems"], 2.0, timeout=90
    )
    assert _status(client, operation_id)["status"] == "Paused" and processed < quantity
    last_minted = _last_minted(server, operation_id)
    assert last_minted <= answered + timedelta(seconds=1), (
        f"a batch started {last_minted - answered} after the pause answer"
    )
    assert client.post(f"/cancel/{operation_id}").status_code == 200
    final = wait_terminal(client, operation_id, timeout=120)
    assert final["status"] == "Cancelled"
    assert final["metrics"]["successfulItems"] == processed
    assert final["metrics"]["skippedItems"] == quantity - processed


def _last_minted(server: Server, operation_id: str) -> datetime:
    """When the operation's last code was minted (a batch's ``processed_at`` is its start)."""
    sql = (
        "SELECT operation_id, toUnixTimestamp64Milli(max(processed_at)) AS last FROM v1_items "
        "WHERE status = 'Success' GROUP BY operation_id"
    )
    answer = httpx.post(
        f"{server.base_url}/api/v1/admin/sql",
        json={"sql": sql},
        headers={"Authorization": f"Bearer {server.token(None, Role.ADMIN)}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    last = {row["operation_id"]: row["last"] for row in answer.json()["data"]["rows"]}
    return datetime.fromtimestamp(int(last[operation_id]) / 1000, UTC)


def _scheduled(n: int, start: datetime, **scheduling: Any) -> dict[str, Any]:
    request = body(n, "SMS", batchSize=10, maxConcurrency=10)
    request["scheduling"] = {
        "isScheduled": True,
        "scheduledDate": start.isoformat(),
        "timeZone": "Europe/Istanbul",
        **scheduling,
    }
    return request


def _send_times(simulator: SimulatorThread) -> list[float]:
    return sorted(e["accepted_at"] for e in simulator.simulator.entries("SMS"))


def test_a_schedule_five_seconds_ahead_starts_on_time(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=2000)).start()
    client = server.client(sponsor_id=63)
    start = datetime.now(UTC) + timedelta(seconds=5)
    response = client.post("/send-links", json=_scheduled(200, start))
    assert response.status_code == 202, response.text
    accepted = response.json()["data"]
    assert datetime.fromisoformat(accepted["scheduledStart"]) == start
    assert datetime.fromisoformat(accepted["estimatedCompletionTime"]) > start
    operation_id = accepted["operationId"]

    queued = wait_for(
        lambda: (
            (s := _status(client, operation_id))["status"] == "Queued" and s["scheduledStart"] and s
        ),
        timeout=10,
        message="operation registered as scheduled",
    )
    assert queued["startedAt"] is None
    assert any("Nothing is sent before" in step for step in queued["nextSteps"])
    final = wait_terminal(client, operation_id, timeout=60)
    assert final["status"] == "Completed" and final["metrics"]["successfulItems"] == 200
    times = _send_times(simulator)
    assert len(times) == 200
    assert times[0] >= start.timestamp(), "nothing may be sent before the schedule"
    assert times[0] - start.timestamp() < 2.0, "the first send is on time"
    assert datetime.fromisoformat(final["startedAt"]) >= start


def test_a_spread_over_twenty_seconds_spreads_the_sends(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=2000)).start()
    client = server.client(sponsor_id=64)
    start = datetime.now(UTC) + timedelta(seconds=2)
    request = _scheduled(400, start, spreadOverTime=True, spreadDurationMinutes=20 / 60)
    operation_id = submit(client, request, "/send-links")
    final = wait_terminal(client, operation_id, timeout=90)
    assert final["status"] == "Completed" and final["metrics"]["successfulItems"] == 400
    times = [t - start.timestamp() for t in _send_times(simulator)]
    assert len(times) == 400
    assert times[0] >= 0
    # 40 batches, one every 0.5 s: each fifth of the spread carries about a fifth of them.
    for k in range(5):
        in_slice = sum(1 for t in times if 4 * k <= t < 4 * (k + 1))
        assert 40 <= in_slice <= 120, (k, in_slice)
    assert 18.0 <= times[-1] <= 22.0


def test_a_scheduled_operation_survives_a_worker_restart(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=2000)).start()
    client = server.client(sponsor_id=65)
    start = datetime.now(UTC) + timedelta(seconds=12)
    operation_id = submit(client, _scheduled(300, start), "/send-links")
    wait_for(
        lambda: _status(client, operation_id)["scheduledStart"] is not None,
        timeout=10,
        message="registered by the worker",
    )
    server.stop(kill=True)
    server.start()
    client = server.client(sponsor_id=65)
    assert _status(client, operation_id)["status"] == "Queued"
    final = wait_terminal(client, operation_id, timeout=90)
    assert final["status"] == "Completed" and final["metrics"]["successfulItems"] == 300
    times = _send_times(simulator)
    assert len(times) == 300 and simulator.simulator.summary()["duplicatesSuppressed"] == 0
    assert times[0] >= start.timestamp()


def test_pause_before_the_schedule_then_cancel(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=2000)).start()
    client = server.client(sponsor_id=66)
    operation_id = submit(
        client, _scheduled(50, datetime.now(UTC) + timedelta(hours=1)), "/send-links"
    )
    wait_for(
        lambda: _status(client, operation_id)["scheduledStart"] is not None,
        timeout=10,
        message="registered by the worker",
    )
    assert client.post(f"/pause/{operation_id}").status_code == 200
    assert client.post(f"/resume/{operation_id}").json()["data"]["status"] == "Queued"
    assert server.client(sponsor_id=67).post(f"/pause/{operation_id}").status_code == 404
    cancelled = client.post(f"/cancel/{operation_id}")
    assert cancelled.status_code == 200, cancelled.text
    final = wait_terminal(client, operation_id, timeout=60)
    assert final["status"] == "Cancelled"
    assert final["metrics"]["skippedItems"] == 50
    assert simulator.simulator.summary()["delivered"] == 0
    assert client.post(f"/pause/{operation_id}").status_code == 409
    assert client.post(f"/resume/{operation_id}").status_code == 409


def test_impossible_schedules_are_422(server: Server) -> None:
    client = server.client(sponsor_id=68)
    past = _scheduled(5, datetime.now(UTC) - timedelta(hours=1))
    response = client.post("/send-links", json=past)
    assert response.status_code == 422
    assert "in the past" in response.text
    bad_zone = _scheduled(5, datetime.now(UTC) + timedelta(hours=1), timeZone="Nowhere/City")
    assert client.post("/send-links", json=bad_zone).status_code == 422
    never = _scheduled(
        5,
        datetime.now(UTC) + timedelta(hours=1),
        avoidWeekdays=list(WEEKDAYS),
    )
    response = client.post("/send-links", json=never)
    assert response.status_code == 422 and "never run" in response.text
