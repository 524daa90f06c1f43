"""Rethrottle on the real broker, worker and provider simulator: PATCH a running send's own
rate down and up, and the simulator's ledger shows the pace follow within a second; the
send still ends with every recipient delivered once."""

from __future__ import annotations

import time
from typing import Any

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body
from tests.support import wait_for

SLOW = 40.0


def _sent_between(simulator: SimulatorThread, start: float, end: float) -> int:
    return sum(1 for e in simulator.simulator.entries("SMS") if start <= e["accepted_at"] < end)


def _delivered(simulator: SimulatorThread) -> int:
    return int(simulator.simulator.summary()["delivered"])


def test_a_running_send_follows_its_new_rate(make_server: Any, simulator: SimulatorThread) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=2000)).start()
    client = server.client(sponsor_id=91)
    total = 3000
    operation_id = submit(
        client, body(total, "SMS", batchSize=50, maxConcurrency=20), "/send-links"
    )
    wait_for(lambda: _delivered(simulator) >= 100, timeout=60, message="sending under way")

    slowed = client.patch(f"/{operation_id}", json={"ratePerSecond": SLOW, "maxConcurrency": 4})
    assert slowed.status_code == 200, slowed.text
    assert slowed.json()["data"]["throttle"]["ratePerSecond"] == SLOW
    at = time.time()
    wait_for(lambda: time.time() >= at + 4, timeout=10, message="slow window")
    slow_window = _sent_between(simulator, at + 1, at + 4)  # after a second to settle
    # a token bucket never goes over its rate: 3 s at 40/s, plus its burst of 4
    assert slow_window <= 3 * SLOW + 4, slow_window
    assert _delivered(simulator) < total

    sped = client.patch(f"/{operation_id}", json={"ratePerSecond": 1000})
    assert sped.status_code == 200, sped.text
    again = time.time()
    final = wait_terminal(client, operation_id, timeout=120)
    assert final["status"] == "Completed"
    assert final["metrics"]["successfulItems"] == total
    fast_window = _sent_between(simulator, again + 1, again + 2)
    remaining = total - _sent_between(simulator, 0, again + 1)
    # faster than the slow rate could ever go, unless it had finished by then
    assert fast_window > 2 * SLOW or fast_window == remaining, (fast_window, remaining)
    summary = simulator.simulator.summary()
    assert summary["delivered"] == total and summary["duplicatesSuppressed"] == 0
    print(f"slow: {slow_window} sends in 3 s at {SLOW}/s; fast: {fast_window} in 1 s")
