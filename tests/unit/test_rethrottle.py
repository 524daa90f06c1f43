"""Rethrottle: a resizable in-flight limit, an operation's own rate, the change applied by the
control agent, and PATCH /{operationId} at the REST edge (with the worker's handlers behind a
fake producer)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.common import OperationStatus
from schemas.messages import ControlAction, ControlCommand
from schemas.requests import SEED_CODE_GENERATION_EXAMPLE, SEED_LINK_SEND_EXAMPLE
from schemas.run_rules import Throttle
from streams.agents import control, guarded
from streams.pacing import AdjustableLimit, Pacer
from streams.progress import rethrottle
from streams.testing import event, fake_worker
from tests.unit.conftest import FakeMessageSink, WorkerBehind, api_client, auth
from tests.unit.test_agents import LINKS, NOW, handle_operations, link_header
from tests.unit.test_progress import state as code_state

BASE = "/api/v1/bulk-operations"


async def test_a_limit_grows_and_shrinks_while_held() -> None:
    limit = AdjustableLimit(1)
    inside: list[int] = []
    release = asyncio.Event()

    async def holder(n: int) -> None:
        async with limit:
            inside.append(n)
            await release.wait()

    tasks = [asyncio.create_task(holder(n)) for n in range(4)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert inside == [0]
    await limit.resize(3)
    for _ in range(3):
        await asyncio.sleep(0)
    assert sorted(inside) == [0, 1, 2] and limit.held == 3
    await limit.resize(1)
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(inside) == [0, 1, 2, 3] and limit.held == 0
    with pytest.raises(ValueError):
        await limit.resize(0)


async def test_a_limit_admits_waiters_in_arrival_order_one_per_leaver() -> None:
    limit = AdjustableLimit(2)
    order: list[int] = []
    gates = [asyncio.Event() for _ in range(6)]

    async def holder(n: int) -> None:
        async with limit:
            order.append(n)
            await gates[n].wait()

    tasks = [asyncio.create_task(holder(n)) for n in range(6)]
    await asyncio.sleep(0)
    assert order == [0, 1] and limit.held == 2
    for n in (1, 0, 2, 3):
        gates[n].set()
        for _ in range(3):
            await asyncio.sleep(0)
        assert limit.held == 2
    assert order == [0, 1, 2, 3, 4, 5]
    gates[4].set()
    gates[5].set()
    await asyncio.gather(*tasks)
    assert limit.held == 0


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    limit = AdjustableLimit(1)
    release = asyncio.Event()
    inside: list[str] = []

    async def holder(name: str) -> None:
        async with limit:
            inside.append(name)
            await release.wait()

    first = asyncio.create_task(holder("first"))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(holder("cancelled"))
    last = asyncio.create_task(holder("last"))
    await asyncio.sleep(0)
    waiting.cancel()
    release.set()
    await asyncio.gather(first, last)
    assert inside == ["first", "last"] and limit.held == 0
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_waiter_cancelled_after_its_turn_came_passes_the_slot_on() -> None:
    limit = AdjustableLimit(1)
    await limit.__aenter__()
    granted = asyncio.create_task(limit.__aenter__())
    after = asyncio.create_task(limit.__aenter__())
    await asyncio.sleep(0)
    await limit.__aexit__()  # the slot goes to `granted`, which is cancelled before it runs
    granted.cancel()
    await asyncio.wait_for(after, timeout=1)
    assert granted.cancelled() and limit.held == 1
    await limit.__aexit__()
    assert limit.held == 0


async def test_an_operation_rate_holds_its_sends_to_it() -> None:
    clock = [0.0]
    pacer = Pacer({"SMS": 1000.0}, {"SMS": 1000.0}, clock=lambda: clock[0])
    pacer.set_operation_rate("op", 2.0)
    own = pacer._operations["op"]
    assert own.take(clock[0]) == 0  # one token to start
    assert own.take(clock[0]) == pytest.approx(0.5)
    pacer.set_operation_rate("op", 4.0)
    assert pacer.operation_rate("op") == 4.0
    pacer.set_operation_rate("op", None)
    assert pacer.operation_rate("op") is None


def test_a_rethrottle_changes_only_what_it_names() -> None:
    from streams.progress import register

    header = link_header(total=100, batch_size=10, chunks=1)
    state = register(header, batches_total=10, serial_base=0, now=NOW)
    assert state.throttle == Throttle(max_concurrency=4)
    assert rethrottle(state, Throttle(rate_per_second=5.0), NOW)
    assert state.throttle == Throttle(max_concurrency=4, rate_per_second=5.0)
    assert not rethrottle(state, Throttle(rate_per_second=5.0), NOW)  # no change
    assert not rethrottle(state, Throttle(spread_seconds=600), NOW)  # nothing to spread
    assert state.throttle.spread_seconds is None
    assert not rethrottle(code_state(), Throttle(max_concurrency=2), NOW)  # not a send


async def test_the_control_agent_puts_it_into_force() -> None:
    worker = fake_worker()
    await handle_operations(worker, link_header(total=100, batch_size=10, chunks=1))
    worker.ctx.registry.in_flight[LINKS] = AdjustableLimit(4)
    command = ControlCommand(
        operation_id=LINKS,
        sponsor_id=7,
        action=ControlAction.RETHROTTLE,
        requested_by="u",
        requested_at=NOW,
        throttle=Throttle(max_concurrency=9, rate_per_second=12.5),
    )
    await guarded(worker.ctx, event(command, topic="unit.control"), control.handle)
    assert worker.ctx.registry.in_flight[LINKS].size == 9
    assert worker.ctx.pacer.operation_rate(LINKS) == 12.5
    state = worker.ctx.tables.operations.load(LINKS)
    assert state is not None and state.throttle == Throttle(max_concurrency=9, rate_per_second=12.5)


def test_a_control_command_needs_its_throttle_exactly_for_rethrottle() -> None:
    with pytest.raises(ValueError):
        ControlCommand(
            operation_id=LINKS,
            sponsor_id=7,
            action=ControlAction.RETHROTTLE,
            requested_by="u",
            requested_at=NOW,
        )


@pytest.fixture
def live(sink: FakeMessageSink) -> Iterator[TestClient]:
    with api_client(sink, sender_rate_whatsapp=80.0) as client:
        sink.on_written = WorkerBehind(client, fake_worker())
        yield client


def submit(client: TestClient, path: str, body: dict[str, Any]) -> str:
    answer = client.post(f"{BASE}/{path}", json=body, headers=auth())
    assert answer.status_code == 202, answer.text
    operation_id = str(answer.json()["data"]["operationId"])
    view = client.app.state.status_view  # type: ignore[attr-defined]

    async def registered() -> None:
        assert await view.registered(operation_id, 5)

    asyncio.run(registered())
    return operation_id


def scheduled_links() -> dict[str, Any]:
    body = copy.deepcopy(SEED_LINK_SEND_EXAMPLE)
    body["scheduling"] = {
        "isScheduled": True,
        "scheduledDate": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
        "timeZone": "UTC",
        "spreadOverTime": True,
        "spreadDurationMinutes": 60,
    }
    return body


def test_patch_changes_a_scheduled_send_and_status_shows_it(live: TestClient) -> None:
    operation_id = submit(live, "send-links", scheduled_links())
    answer = live.patch(
        f"{BASE}/{operation_id}",
        json={"maxConcurrency": 2, "ratePerSecond": 500, "spreadDurationMinutes": 180},
        headers=auth(),
    )
    assert answer.status_code == 200, answer.text
    assert "capped to the WhatsApp limit of 80/s" in answer.json()["message"]
    throttle = answer.json()["data"]["throttle"]
    assert throttle == {"maxConcurrency": 2, "ratePerSecond": 80.0, "spreadSeconds": 10800.0}
    status = live.get(f"{BASE}/status/{operation_id}", headers=auth()).json()["data"]
    assert status["throttle"] == throttle
    assert status["status"] == OperationStatus.QUEUED.value


def test_patch_refuses_what_it_cannot_change(live: TestClient) -> None:
    codes = submit(live, "generate-codes", copy.deepcopy(SEED_CODE_GENERATION_EXAMPLE))
    answer = live.patch(f"{BASE}/{codes}", json={"maxConcurrency": 2}, headers=auth())
    assert answer.status_code == 409 and answer.json()["error"] == "NOT_A_SEND"
    links = submit(live, "send-links", copy.deepcopy(SEED_LINK_SEND_EXAMPLE))
    spread = live.patch(f"{BASE}/{links}", json={"spreadDurationMinutes": 30}, headers=auth())
    assert spread.status_code == 409 and spread.json()["error"] == "NOT_SPREAD"
    other = live.patch(f"{BASE}/{links}", json={"maxConcurrency": 2}, headers=auth(8))
    assert other.status_code == 404
    assert live.patch(f"{BASE}/{links}", json={"maxConcurrency": 2}).status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({}, "body"),
        ({"maxConcurrency": None}, "body"),
        ({"maxConcurrency": 0}, "maxConcurrency"),
        ({"maxConcurrency": "3"}, "maxConcurrency"),
        ({"ratePerSecond": -1}, "ratePerSecond"),
        ({"spreadDurationMinutes": 10**9}, "spreadDurationMinutes"),
        ({"speed": 3}, "speed"),
    ],
)
def test_bad_changes_are_422(live: TestClient, change: dict[str, Any], field: str) -> None:
    links = submit(live, "send-links", copy.deepcopy(SEED_LINK_SEND_EXAMPLE))
    answer = live.patch(f"{BASE}/{links}", json=change, headers=auth())
    assert answer.status_code == 422
    assert answer.json()["details"]["errors"][0]["field"] == field


def test_a_finished_operation_is_409(live: TestClient) -> None:
    links = submit(live, "send-links", copy.deepcopy(SEED_LINK_SEND_EXAMPLE))
    view = live.app.state.status_view  # type: ignore[attr-defined]
    finished = view.get(links).model_copy(
        update={"status": OperationStatus.COMPLETED, "version": 99}
    )
    view.apply(finished)
    answer = live.patch(f"{BASE}/{links}", json={"maxConcurrency": 2}, headers=auth())
    assert answer.status_code == 409 and answer.json()["error"] == "OPERATION_FINISHED"
