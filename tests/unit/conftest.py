"""Unit-test fixtures: the API with a fake producer and a fake code lookup (no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_api
from api.auth import Role, mint_token
from api.producer import ProduceError
from api.status_view import StatusView
from bulkops.settings import ApiSettings

SECRET = "unit-jwt-secret-" + "x" * 32


class FakeMessageSink:
    """Records what would go to Kafka; can be told to fail like an unreachable broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = False

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        if self.fail:
            raise ProduceError("Local: Message timed out")
        self.sent.append((topic, key, value))

    def close(self) -> None:
        pass


class FakeCodeStore:
    """The queries submissions make before queueing: which sponsorship codes exist, which
    dealers exist, how many codes each tier has available (the ``AnalyticsStore`` API)."""

    def __init__(self, codes: set[str]) -> None:
        self.codes = codes
        self.dealers: set[str] = set()
        self.available: dict[int, int] = {1: 10_000, 2: 10_000, 3: 10_000, 4: 10_000}

    def known_codes(self, sponsor_id: int, codes: Any) -> set[str]:
        return self.codes & set(codes)

    def existing_dealers(self, sponsor_id: int, emails: Any) -> set[str]:
        return self.dealers & set(emails)

    def available_codes(self, sponsor_id: int) -> dict[int, int]:
        return dict(self.available)


@pytest.fixture
def sink() -> FakeMessageSink:
    return FakeMessageSink()


@pytest.fixture
def client(sink: FakeMessageSink) -> Iterator[TestClient]:
    settings = ApiSettings(
        env="test",
        jwt_secret=SECRET,
        code_secret="c" * 40,
        webhook_secret="w" * 40,
        topic_prefix="unit",
        max_items_per_operation=5000,
        max_body_bytes=64 * 1024,
        max_batches_per_operation=1000,
    )

    async def start(app: FastAPI) -> None:
        app.state.message_sink = sink
        app.state.status_view = StatusView()
        app.state.status_view.ready.set()
        app.state.store = FakeCodeStore({"AGRI-2025-001"})

    async def stop(_: FastAPI) -> None:
        pass

    with TestClient(create_api(settings, start=start, stop=stop)) as test_client:
        yield test_client


def auth(sponsor_id: int | None = 7, role: Role = Role.SPONSOR) -> dict[str, str]:
    return {
        "Authorization": "Bearer "
        + mint_token(SECRET, subject="u", role=role, sponsor_id=sponsor_id)
    }
