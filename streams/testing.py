"""A worker context built of fakes, for unit tests of the agents' handlers without a broker.

Topics are :class:`RecordingOutbox` es (every message sent is kept, decoded on demand), the
tables are dicts, the store is :class:`analytics.testing.MemoryStore`, providers record what
they were asked to send. Handlers run exactly as in the worker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from analytics.testing import MemoryStore
from core.settings import WorkerSettings
from core.topics import sponsor_key
from streams.codes import CodeMinter
from streams.context import Outboxes, WorkerContext
from streams.providers.base import Delivery
from streams.tables import Tables
from streams.webhooks import WebhookLauncher

M = TypeVar("M", bound=BaseModel)


@dataclass
class RecordingOutbox:
    """A topic that keeps what is sent to it; every send is "on the broker" at once."""

    name: str
    sent: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)

    async def send(self, *, key: bytes | None, value: bytes | None) -> asyncio.Future[None]:
        self.sent.append((key, value))
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    def messages(self, kind: type[M] | TypeAdapter[Any]) -> list[Any]:
        values = [value for _, value in self.sent if value is not None]
        if isinstance(kind, TypeAdapter):
            return [kind.validate_json(value) for value in values]
        return [kind.model_validate_json(value) for value in values]

    def tombstones(self) -> list[bytes | None]:
        """The keys sent with no value."""
        return [key for key, value in self.sent if value is None]

    def clear(self) -> None:
        self.sent.clear()


@dataclass
class RecordingProvider:
    """A provider that accepts every message and remembers it."""

    channel: str
    sent: list[dict[str, str]] = field(default_factory=list)

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery:
        self.sent.append({"to": to, "body": body, "key": idempotency_key})
        return Delivery(provider_message_id=f"msg-{len(self.sent)}")

    async def close(self) -> None:
        pass


def worker_settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "env": "test",
        "jwt_secret": "unit-jwt-secret-" + "x" * 32,
        "code_secret": "unit-code-secret-" + "c" * 32,
        "webhook_secret": "unit-webhook-secret-" + "w" * 32,
        "sms_auth_token": "unit-token",
        "whatsapp_token": "unit-token",
        "topic_prefix": "unit",
        "max_items_per_operation": 1_000_000,
        "sender_rate_sms": 100_000,
        "sender_rate_whatsapp": 100_000,
        "sender_rate_email": 100_000,
        "sponsor_rate_per_second": 100_000,
        # No quotas unless a test sets them (tests/unit/test_quotas.py does).
        "quota_max_concurrent_operations": 0,
        "quota_max_operations_per_day": 0,
        "quota_max_items_per_day": 0,
        # Rows written at once: a handler's effects are visible when it returns.
        "write_behind_seconds": 0,
        # Every batch processed by the worker's own process agent (tests/unit/test_processor.py
        # hands code batches to processors).
        "processors": 0,
        **overrides,
    }
    return WorkerSettings(**values)


@dataclass
class FakeWorker:
    """A context and the fakes behind it, for asserting on what handlers did."""

    ctx: WorkerContext
    store: MemoryStore
    out: dict[str, RecordingOutbox]
    providers: dict[str, RecordingProvider]
    tables: dict[str, dict[str, Any]]


def fake_worker(**settings: Any) -> FakeWorker:
    config = worker_settings(**settings)
    store = MemoryStore()
    names = (
        "operations",
        "items",
        "work",
        "results",
        "progress",
        "status",
        "quotas",
        "dead_letter",
        "job_control",
    )
    out = {name: RecordingOutbox(name) for name in names}

    def job_topic(job_type: str) -> RecordingOutbox:
        return out.setdefault(f"jobs.{job_type}", RecordingOutbox(f"jobs.{job_type}"))

    outboxes = Outboxes(**out, job_topic=job_topic)
    raw: dict[str, dict[str, Any]] = {
        "operations": {},
        "serials": {},
        "early_controls": {},
        "quotas": {},
    }
    providers = {c: RecordingProvider(c) for c in ("SMS", "WhatsApp", "Email")}
    ctx = WorkerContext(
        settings=config,
        writer=store.writer,
        state=store.state,
        tables=Tables.over(raw["operations"], raw["serials"], raw["early_controls"], raw["quotas"]),
        out=outboxes,
        providers=dict(providers),
        pacer=WorkerContext.pacer_for(config),
        minter=CodeMinter(config.code_secret),
        webhooks=WebhookLauncher(config, outboxes.progress),
    )
    return FakeWorker(ctx, store, out, providers, raw)


def event(
    message: BaseModel | bytes,
    *,
    sponsor_id: int | None = None,
    topic: str = "unit.operations",
    partition: int = 0,
    offset: int = 0,
) -> Any:
    """What an agent receives: the value, and the message it came in (key, place)."""
    value = message if isinstance(message, bytes) else message.model_dump_json().encode()
    if sponsor_id is None:
        sponsor_id = int(getattr(message, "sponsor_id", 0))
    key = sponsor_key(sponsor_id) if sponsor_id else None
    return SimpleNamespace(
        value=value,
        message=SimpleNamespace(
            key=key, value=value, topic=topic, partition=partition, offset=offset
        ),
    )
