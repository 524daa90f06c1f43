"""What every handler of the worker works with: the :class:`WorkerContext`.

It holds the settings, the store's parts the worker uses, the providers, the tables, the
topics it sends to, and the per-process registries (which stops are known, the semaphores of
link sends in flight, what the timers track). Handlers are module-level functions taking the
context, so a unit test builds one with fakes (:func:`streams.testing.fake_context`) and
calls a handler without a broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from faust.types import EventT
from pydantic import BaseModel

from analytics import rows
from analytics.interfaces import KeptState, ResultSink
from analytics.rows import TableRows
from core.metrics import CLICKHOUSE_RETRIES, DEAD_LETTERS
from core.settings import WorkerSettings
from core.topics import sponsor_key
from schemas.messages import DeadLetter, OperationRequested
from streams.alerts import Alerts
from streams.codes import CodeMinter
from streams.jobs.running import SlotPacer
from streams.jobs.waits import JobWaits
from streams.pacing import AdjustableLimit, Pacer
from streams.progress import OperationState
from streams.providers.base import Provider
from streams.tables import Tables
from streams.webhooks import WebhookLauncher
from streams.writebehind import WriteBehind

log = logging.getLogger("bulkops.worker")
T = TypeVar("T")

_CLICKHOUSE_RETRY_MAX_SECONDS = 30.0
_SLOW_CLICKHOUSE_SECONDS = 10.0


class InvalidMessage(ValueError):
    """A message that parses but breaks a rule the worker enforces."""


class Outbox(Protocol):
    """A topic the worker sends to (a Faust topic; a recording fake in unit tests).

    ``send`` returns once the message is buffered; awaiting its result waits for the broker.
    A ``None`` value is a tombstone (compacted topics drop the key).
    """

    async def send(self, *, key: bytes | None, value: bytes | None) -> Any: ...


@dataclass(frozen=True)
class Outboxes:
    operations: Outbox
    items: Outbox
    work: Outbox
    results: Outbox
    progress: Outbox
    status: Outbox
    quotas: Outbox
    dead_letter: Outbox
    job_control: Outbox
    # The topic of a job type's batches (``ticket:update_status`` → ``<prefix>.jobs.…``).
    job_topic: Callable[[str], Outbox]


@dataclass
class Registry:
    """What one worker process keeps in memory about running operations.

    Everything here can be rebuilt from the tables, and is dropped when an operation ends
    (:meth:`forget`), so it stays bounded by the operations running on this worker.
    """

    stops: dict[str, str] = field(default_factory=dict)
    in_flight: dict[str, AdjustableLimit] = field(default_factory=dict)
    turns: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    published: dict[str, float] = field(default_factory=dict)  # loop time of the last snapshot
    ticking: dict[str, float] = field(default_factory=dict)
    # Code requests, so a release in the window's turn plans from memory, not a read.
    requests: dict[str, OperationRequested] = field(default_factory=dict)
    # Job batches handed out and waiting for their answer; each job type's pace.
    job_waits: JobWaits = field(default_factory=JobWaits)
    job_pacers: dict[str, SlotPacer] = field(default_factory=dict)
    # Set while a rebalance has waited its grace for the batches in flight: job batches then
    # go back on their topic instead of holding the rebalance (streams.delivery).
    hand_back: asyncio.Event = field(default_factory=asyncio.Event)

    def forget(self, operation_id: str) -> None:
        """Everything about an operation that has ended."""
        self.stops.pop(operation_id, None)
        self.in_flight.pop(operation_id, None)
        self.turns.pop(operation_id, None)
        self.dirty.discard(operation_id)
        self.published.pop(operation_id, None)
        self.ticking.pop(operation_id, None)
        self.requests.pop(operation_id, None)


def now() -> datetime:
    return datetime.now(UTC)


def dead_letter_of(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    exc: BaseException,
) -> DeadLetter:
    """The dead letter of a message that could not be used (logged and counted here)."""
    log.warning("dead-lettered %s[%d]@%d: %s", topic, partition, offset, reason)
    DEAD_LETTERS.labels(topic, type(exc).__name__).inc()
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key.decode(errors="replace") if key else None,
        reason=reason[:4000],
        error_type=type(exc).__name__,
        payload=(value or b"")[:65536].decode(errors="replace"),
        failed_at=now(),
    )


@dataclass
class WorkerContext:
    settings: WorkerSettings
    writer: ResultSink
    state: KeptState
    tables: Tables
    out: Outboxes
    providers: dict[str, Provider]
    pacer: Pacer
    minter: CodeMinter
    webhooks: WebhookLauncher
    registry: Registry = field(default_factory=Registry)
    behind: WriteBehind = field(init=False)
    alerts: Alerts = field(init=False)

    def __post_init__(self) -> None:
        self.alerts = Alerts(self.settings)
        self.behind = WriteBehind(
            self._store_rows,
            interval=self.settings.write_behind_seconds,
            max_rows=self.settings.write_behind_max_rows,
        )

    async def _store_rows(self, tables: Sequence[TableRows]) -> None:
        count = sum(len(t) for t in tables)
        await self.with_retry(f"storing {count} operation rows", self.writer.write, tables)

    @classmethod
    def pacer_for(cls, settings: WorkerSettings) -> Pacer:
        channels = ("SMS", "WhatsApp", "Email")
        return Pacer(
            sender_rates={channel: settings.sender_rate(channel) for channel in channels},
            sponsor_rates=dict.fromkeys(channels, settings.sponsor_rate_per_second),
        )

    async def send(self, outbox: Outbox, key: bytes | None, message: BaseModel) -> Any:
        return await outbox.send(key=key, value=message.model_dump_json().encode())

    async def publish(self, state: OperationState) -> None:
        """Put the operation's snapshot on the compacted status topic."""
        await self.out.status.send(
            key=state.operation_id.encode(),
            value=state.snapshot().model_dump_json().encode(),
        )
        self.registry.dirty.discard(state.operation_id)
        if state.status.is_terminal:
            self.registry.published.pop(state.operation_id, None)
        else:
            self.registry.published[state.operation_id] = asyncio.get_running_loop().time()

    async def unpublish(self, operation_id: str) -> None:
        """A tombstone on the status topic: compaction drops the operation's snapshots."""
        await self.out.status.send(key=operation_id.encode(), value=None)

    async def dead_letter(self, event: EventT[bytes], reason: str, exc: BaseException) -> None:
        message = event.message
        letter = dead_letter_of(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            reason,
            exc,
        )
        await self.send(self.out.dead_letter, message.key, letter)

    async def with_retry(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking ClickHouse call off the loop; on failure wait and retry, never skip.

        Blocking the agent keeps its partitions where they are, so nothing is acknowledged
        (and nothing is lost) while ClickHouse is away; Kafka buffers meanwhile.
        """
        delay = 0.5
        while True:
            call = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
            try:
                while True:
                    done, _ = await asyncio.wait({call}, timeout=_SLOW_CLICKHOUSE_SECONDS)
                    if done:
                        break
                    log.warning(
                        "%s: ClickHouse has not answered for %.0fs", what, _SLOW_CLICKHOUSE_SECONDS
                    )
                return call.result()
            except Exception:
                log.exception("%s failed; retrying in %.1fs", what, delay)
                CLICKHOUSE_RETRIES.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _CLICKHOUSE_RETRY_MAX_SECONDS)

    async def record_operation(
        self, state: OperationState, then: Callable[[], Awaitable[Any]] | None = None
    ) -> None:
        """Write the operation's row (history reads it) as it is now, with the next flush;
        ``then`` runs once it is stored, and makes that flush come at once."""
        await self.behind.later(
            rows.operation_row(
                state.snapshot(),
                subscription_tier_id=state.subscription_tier_id,
                code_prefix=state.code_prefix,
                channel=state.channel.value if state.channel else None,
                total_cost=state.total_cost,
            ),
            then=then,
            soon=then is not None,
        )

    async def record_request(self, request: OperationRequested) -> None:
        """Keep the request as submitted (replays collapse on merge), with the next flush."""
        await self.behind.later(rows.request_row(request))


def check_key(event: EventT[bytes], sponsor_id: int) -> None:
    """Every flow topic is keyed by sponsor id; a message keyed otherwise is refused."""
    check_sponsor_key(event.message.key, sponsor_id)


def check_sponsor_key(key: bytes | None, sponsor_id: int) -> None:
    if key != sponsor_key(sponsor_id):
        raise InvalidMessage(
            f"message key {key!r} does not match sponsorId {sponsor_id}: "
            f"every flow topic is keyed by sponsor id"
        )
