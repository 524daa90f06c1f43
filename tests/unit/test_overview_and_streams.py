"""The Admin's overview (lag, dead letters, live operations by sponsor) and the stream of all
of a caller's operations, on fakes: who may see what, and each change sent once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import Role
from api.routes import live
from api.status_view import StatusView
from core.lag import PartitionLag
from schemas.status import OperationSnapshot
from tests.unit.conftest import auth
from tests.unit.test_metrics import snapshot


class FakeProbe:
    group = "unit-worker"

    def __init__(self, lags: list[PartitionLag] | None, retained: int | None) -> None:
        self.lags, self.size = lags, retained

    def read(self) -> list[PartitionLag] | None:
        return self.lags

    def retained(self, topic: str) -> int | None:
        return self.size


def overview(client: TestClient, **headers: str) -> Any:
    return client.get("/api/v1/admin/overview", headers=headers)


def test_the_overview_is_for_admins_and_adds_up(client: TestClient) -> None:
    state = client.app.state  # type: ignore[attr-defined]
    state.lag_probe = FakeProbe(
        [PartitionLag("unit.items", 0, 10, 15), PartitionLag("unit.items", 1, 7, 7)], 3
    )
    state.status_view.apply(snapshot("codegen_" + "1" * 32, "Processing"))
    state.status_view.apply(snapshot("codegen_" + "2" * 32, "Completed"))
    assert overview(client).status_code == 401
    refused = overview(client, **auth(7))
    assert refused.status_code == 403 and refused.json()["error"] == "FORBIDDEN"

    data = overview(client, **auth(None, Role.ADMIN)).json()["data"]
    lag = data["consumerLag"]
    assert (lag["group"], lag["probeOk"], lag["totalLag"]) == ("unit-worker", True, 5)
    assert lag["partitions"][0] == {"topic": "unit.items", "partition": 0, "lag": 5}
    assert data["deadLetters"] == {"topic": "unit.dead-letter", "retained": 3}
    assert {(o["status"], o["count"]) for o in data["operations"]} == {
        ("Processing", 1),
        ("Completed", 1),
    }
    assert data["sponsors"] == [{"sponsorId": 7, "running": 1, "live": 2}]


def test_an_unreachable_broker_shows_as_such(client: TestClient) -> None:
    client.app.state.lag_probe = FakeProbe(None, None)  # type: ignore[attr-defined]
    data = overview(client, **auth(None, Role.ADMIN)).json()["data"]
    assert data["consumerLag"]["probeOk"] is False and data["consumerLag"]["partitions"] == []
    assert data["deadLetters"]["retained"] is None


class PolledView(StatusView):
    """A status view that tells when the stream has looked at it."""

    def __init__(self) -> None:
        super().__init__()
        self.polled = asyncio.Event()

    def visible(self, sponsor_id: int | None) -> list[OperationSnapshot]:
        self.polled.set()
        return super().visible(sponsor_id)

    async def polls(self, count: int) -> None:
        """Until the stream has looked ``count`` more times (what changed before is sent)."""
        for _ in range(count):
            self.polled.clear()
            await asyncio.wait_for(self.polled.wait(), 5)


async def test_the_list_stream_sends_a_sponsors_operations_and_each_change_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "LIST_INTERVAL", 0.01)
    view = PolledView()
    mine, theirs = "codegen_" + "1" * 32, "codegen_" + "2" * 32
    view.apply(snapshot(mine, "Processing"))
    other = snapshot(theirs, "Processing")
    other.sponsor_id = 8
    view.apply(other)
    got: list[dict[str, Any]] = []

    async def collect(sponsor_id: int | None) -> None:
        async for message in live.follow_all(view, sponsor_id):
            got.append(message)

    task = asyncio.create_task(collect(7))
    try:
        await view.polls(3)
        assert [m["operationId"] for m in got] == [mine], "once; sponsor 8's never"
        done = snapshot(mine, "Completed")
        done.version = 5
        view.apply(done)
        await view.polls(3)
        assert [(m["status"], m["version"]) for m in got] == [("Processing", 0), ("Completed", 5)]
    finally:
        task.cancel()

    got.clear()
    task = asyncio.create_task(collect(None))
    try:
        await view.polls(3)
        assert {m["operationId"] for m in got} == {mine, theirs}
    finally:
        task.cancel()


def test_history_filters_are_validated(client: TestClient) -> None:
    url = "/api/v1/bulk-operations/history"
    for query, field in (
        ({"operationType": "Teleport"}, "operationType"),
        ({"search": "x" * 101}, "search"),
        ({"search": ""}, "search"),
    ):
        answer = client.get(url, params=query, headers=auth(7))
        assert answer.status_code == 422, query
        assert answer.json()["details"]["errors"][0]["field"] == field
