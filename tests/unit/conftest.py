"""Unit-test fixtures: the API with a fake producer and a fake code lookup (no I/O)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fastapi import FastAPI
from fastapi.testclient import TestClient

from analytics.testing import MemoryStore
from api.app import create_api
from api.auth import Role, mint_token
from api.job_types_view import JobTypeView
from api.producer import ProduceError
from api.status_view import QuotaView, StatusView
from core.settings import ApiSettings
from core.topics import Topics, TopicSpec
from schemas.messages import OperationsMessage
from streams.agents import control, explode, guarded
from streams.testing import FakeWorker

SECRET = "unit-jwt-secret-" + "x" * 32


class FakeMessageSink:
    """Records what would go to Kafka; can be told to fail like an unreachable broker.

    ``fail`` fails every message as a timed-out one (possibly persisted); ``stall`` leaves
    messages queued until they are purged, like a producer whose broker is down.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.partitions: list[int | None] = []
        self.fail = False
        self.stall = False
        self.down = False  # what unreachable() reports
        self.purges = 0
        self._queued: list[asyncio.Future[None]] = []
        # Called with each message written: a test's stand-in for the worker's answer.
        self.on_written: Callable[[str, bytes, bytes], None] | None = None
        # Topics the API created at run time (a job type's), as ``create_topic`` would.
        self.created_topics: list[TopicSpec] = []

    def produce(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.stall:
            self._queued.append(future)
        elif self.fail:
            future.set_exception(
                ProduceError("_MSG_TIMED_OUT: Local: Message timed out", possibly_persisted=True)
            )
        else:
            self.sent.append((topic, key, value))
            self.partitions.append(partition)
            future.set_result(None)
            if self.on_written is not None:
                self.on_written(topic, key, value)
        return future

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> None:
        await self.produce(topic, key, value, partition)

    def purge_queued(self) -> None:
        self.purges += 1
        for future in self._queued:
            if not future.done():
                future.set_exception(
                    ProduceError("_PURGE_QUEUE: Local: Purged in queue", possibly_persisted=False)
                )
        self._queued.clear()

    def unreachable(self, timeout: float) -> str | None:
        return "Kafka: no broker answered (fake)" if self.down else None

    def close(self) -> None:
        pass


def memory_store(per_tier: int = 500) -> MemoryStore:
    """Sponsor 7's store: one sponsorship code the seed's examples use, and codes per tier."""
    store = MemoryStore()
    store.stock_codes(7, 1, ["AGRI-2025-001"])
    for tier in (1, 2, 3, 4):
        store.stock_codes(7, tier, [f"T{tier}-{i:06d}" for i in range(per_tier)])
    return store


@pytest.fixture(autouse=True)
def _no_bulkops_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests see the settings they build, never the developer's ``BULKOPS_*`` variables."""
    for name in [name for name in os.environ if name.startswith("BULKOPS_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def sink() -> FakeMessageSink:
    return FakeMessageSink()


@contextmanager
def api_client(sink: FakeMessageSink, **overrides: Any) -> Iterator[TestClient]:
    """The API on fakes: ``sink`` for Kafka, empty live views, a memory store."""
    values: dict[str, Any] = {
        "env": "test",
        "jwt_secret": SECRET,
        "code_secret": "c" * 40,
        "webhook_secret": "w" * 40,
        "topic_prefix": "unit",
        "max_items_per_operation": 5000,
        "max_body_bytes": 64 * 1024,
        "max_batches_per_operation": 1000,
        "produce_timeout_seconds": 1.0,
        # No quotas unless asked (no worker gives a verdict here): see test_quota_api.py.
        "quota_max_concurrent_operations": 0,
        "quota_max_operations_per_day": 0,
        "quota_max_items_per_day": 0,
        **overrides,
    }

    async def start(app: FastAPI) -> None:
        app.state.message_sink = sink
        app.state.status_view = StatusView()
        app.state.status_view.ready.set()
        app.state.quota_view = QuotaView()
        app.state.job_type_view = JobTypeView()
        app.state.create_topic = sink.created_topics.append
        app.state.store = memory_store()

    async def stop(_: FastAPI) -> None:
        pass

    with TestClient(create_api(ApiSettings(**values), start=start, stop=stop)) as test_client:
        yield test_client


@contextmanager
def job_types_client(sink: FakeMessageSink, **overrides: Any) -> Iterator[TestClient]:
    """The API whose job-type view reads back what it writes to the job-types topic, as the
    topic's follower would."""
    with api_client(sink, **overrides) as client:
        view = client.app.state.job_type_view  # type: ignore[attr-defined]
        topic = Topics("unit").job_types.name

        def follow(written: str, key: bytes, value: bytes) -> None:
            if written == topic:
                view.apply_json(value)

        sink.on_written = follow
        yield client


def operations_sent(sink: FakeMessageSink) -> list[Any]:
    """What the API put on the operations topic, parsed."""
    topic = Topics("unit").operations.name
    return [OperationsMessage.validate_json(value) for name, _, value in sink.sent if name == topic]


@pytest.fixture
def client(sink: FakeMessageSink) -> Iterator[TestClient]:
    with api_client(sink) as test_client:
        yield test_client


def auth(sponsor_id: int | None = 7, role: Role = Role.SPONSOR) -> dict[str, str]:
    return {
        "Authorization": "Bearer "
        + mint_token(SECRET, subject="u", role=role, sponsor_id=sponsor_id)
    }


class WorkerBehind:
    """The worker's handlers on what the API writes to the operations and control topics,
    their status and quota snapshots fed to the API's views: the broker round trip, in
    process."""

    def __init__(self, client: TestClient, worker: FakeWorker) -> None:
        self.client = client
        self.worker = worker
        self.tasks: set[asyncio.Task[None]] = set()
        topics = Topics("unit")
        self.handlers = {
            topics.operations.name: explode.handle,
            topics.control.name: control.handle,
        }

    def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        handler = self.handlers.get(topic)
        if handler is not None:
            task = asyncio.get_running_loop().create_task(self.handle(topic, key, value))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def handle(self, topic: str, key: bytes, value: bytes) -> None:
        message = SimpleNamespace(key=key, value=value, topic=topic, partition=0, offset=0)
        event = SimpleNamespace(value=value, message=message)
        await guarded(self.worker.ctx, event, self.handlers[topic])  # type: ignore[arg-type]
        state = self.client.app.state  # type: ignore[attr-defined]
        for _, snapshot in self.worker.out["status"].sent:
            state.status_view.apply_json(snapshot)
        for _, snapshot in self.worker.out["quotas"].sent:
            state.quota_view.apply_json(snapshot)
        self.worker.out["status"].clear()
        self.worker.out["quotas"].clear()


LocalRoute = Callable[[web.Request], Awaitable[web.StreamResponse]]
LocalHttp = Callable[[str, LocalRoute], Awaitable[str]]


@pytest.fixture
async def local_http() -> AsyncIterator[LocalHttp]:
    """Starts real local HTTP servers, each answering POSTs to one path with one route;
    gives their base URL. All are closed after the test."""
    servers: list[TestServer] = []

    async def start(path: str, route: LocalRoute) -> str:
        app = web.Application()
        app.router.add_post(path, route)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()
