"""The worker's timers. They only *read* the tables (tables are written from stream events):
what must change goes as a message to the explode agent, which owns the sponsor's partition.

* :func:`release_due` asks for the release of held batches that are due (``ReleaseTick``);
* :func:`publish_running` refreshes running operations' status snapshots, and restarts
  completion webhooks a restart left pending;
* :func:`find_stalls` drives on operations whose batches stopped moving
  (see :mod:`streams.watchdog`);
* ``evict-finished`` lets finished operations and stale early controls go
  (see :mod:`streams.agents.evict`);
* :func:`alert_stalled` raises an alert about running operations that stopped making
  progress (see :mod:`streams.alerts`).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, cast

import faust
from faust.types import TP

from core.topics import Topics, sponsor_key
from schemas.common import OperationStatus
from streams.agents.evict import ask_for_evictions
from streams.agents.release import ask_for_release
from streams.alerts import STALLED
from streams.context import WorkerContext, now
from streams.delivery import InFlightSafeConsumer
from streams.releases import due_batches
from streams.watchdog import PendingWork, StallWatchdog, remedy


async def release_due(ctx: WorkerContext) -> None:
    """Ask for a release when an operation has held batches that are due."""
    operations = ctx.tables.operations
    moment = now()
    for op_id in operations.holding():
        state = operations.view(op_id)
        if state is None or not state.held_count or state.status.is_terminal:
            continue
        if not due_batches(state, moment, 1):
            continue
        await ask_for_release(ctx, op_id, state.sponsor_id)


async def publish_running(ctx: WorkerContext) -> None:
    """Changed operations get a fresh snapshot once per interval, unchanged running ones
    every ``status_refresh_seconds`` (a backlog of queued operations would otherwise cost a
    snapshot each per second).

    Each value is read again right before it is sent: an agent may have moved the operation
    on while an earlier send awaited, and the compacted topic keeps the last snapshot per
    key, so a stale one must never be sent after a newer one.
    """
    operations = ctx.tables.operations
    dirty = ctx.registry.dirty
    published = ctx.registry.published
    stale_before = asyncio.get_running_loop().time() - ctx.settings.status_refresh_seconds
    for op_id in {*operations.watched(), *dirty}:
        if op_id not in dirty and published.get(op_id, -math.inf) > stale_before:
            continue
        state = operations.view(op_id)
        if state is None:
            continue
        if state.webhook_state == "pending":  # e.g. after a restart
            ctx.webhooks.start(state, "operation_completed")
        if op_id in dirty or not state.status.is_terminal:
            await ctx.publish(state.model_copy(update={"last_updated": now()}))


async def alert_stalled(ctx: WorkerContext) -> None:
    """Running operations that stopped making progress raise an alert (streams/alerts.py)."""
    operations = ctx.tables.operations
    running = [
        state
        for op_id in operations.watched()
        if (state := operations.view(op_id)) is not None
        and state.status is OperationStatus.PROCESSING
    ]
    for state, message in ctx.alerts.stalled(running):
        ctx.alerts.raise_alert(state, STALLED, message)


async def find_stalls(
    ctx: WorkerContext, watchdog: StallWatchdog, consumer: InFlightSafeConsumer, topics: Topics
) -> None:
    """Operations whose released batches stopped moving are driven on."""
    operations = ctx.tables.operations
    assigned = consumer.assignment()
    clock = asyncio.get_running_loop().time()
    flow = topics.flow()
    watched: list[str] = []
    for op_id in operations.watched():
        state = operations.view(op_id)
        if state is None or state.status.is_terminal:
            continue
        work = PendingWork.of(state)
        if not work or state.partition is None:
            continue
        tps = [TP(name, state.partition) for name in flow]
        if not assigned.issuperset(tps):
            continue
        watched.append(op_id)
        verdict = watchdog.observe(op_id, work.fingerprint(state), tps, consumer, clock)
        if verdict is not None:
            message = remedy(state, work, verdict, ctx.settings.release_batches_per_tick)
            await ctx.send(ctx.out.operations, sponsor_key(state.sponsor_id), message)
    watchdog.retain(watched)


def declare(app: faust.App, ctx: WorkerContext) -> None:
    """Declare the timers on ``app``."""
    settings = ctx.settings
    watchdog = StallWatchdog(settings.stall_seconds)
    topics = Topics(settings.topic_prefix)

    async def releases() -> None:
        await release_due(ctx)

    async def snapshots() -> None:
        await publish_running(ctx)

    async def stalls() -> None:
        await find_stalls(ctx, watchdog, cast(InFlightSafeConsumer, app.consumer), topics)

    app.timer(settings.release_interval_seconds, name="release-due")(releases)
    app.timer(settings.status_interval_seconds, name="publish-running")(snapshots)

    async def evictions() -> None:
        await ask_for_evictions(ctx)

    # Receivers get (sender, **kwargs); the tables hold other partitions now.
    async def rebalanced(*_: Any, **__: Any) -> None:
        ctx.tables.rebalanced()

    app.on_rebalance_complete.connect(cast(Any, rebalanced))

    app.timer(settings.stall_check_interval_seconds, name="find-stalls")(stalls)
    app.timer(settings.eviction_interval_seconds, name="evict-finished")(evictions)

    async def stalled() -> None:
        await alert_stalled(ctx)

    if settings.alert_stalled_seconds:
        app.timer(settings.alert_check_interval_seconds, name="alert-stalled")(stalled)
