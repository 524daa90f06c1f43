"""Letting finished operations go, so the worker's state stays bounded over months.

A finished operation stays in the tables (and on the status topic) for
``finished_retention_seconds``; then its last snapshot is archived in ClickHouse, it leaves
the ``operations`` table and a tombstone removes it from the compacted status topic. The API
answers for it from the archive with the same shape. Early controls whose request never came
go after ``early_control_retention_seconds``.

The timer only reads the tables; it asks the explode agent, which owns the sponsor's
partition, with an :class:`OperationEvict` message (tables are written from stream events).
The agent archives with the next write-behind flush (many snapshots in one insert) and, once
stored, asks itself again with the archived version: only then does the operation go.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from analytics import rows
from core import logs
from core.topics import sponsor_key
from schemas.messages import OperationEvict
from streams.context import WorkerContext, now

log = logging.getLogger("bulkops.worker")


async def ask_for_evictions(ctx: WorkerContext) -> int:
    """Ask for the eviction of every operation and early control kept long enough; returns
    how many were asked for (asking twice is harmless)."""
    moment = now()
    settings = ctx.settings
    due = ctx.tables.operations.finished_before(
        moment - timedelta(seconds=settings.finished_retention_seconds)
    )
    due += ctx.tables.early_controls.kept_before(
        moment - timedelta(seconds=settings.early_control_retention_seconds)
    )
    for op_id, sponsor_id in due:
        message = OperationEvict(operation_id=op_id, sponsor_id=sponsor_id)
        await ctx.send(ctx.out.operations, sponsor_key(sponsor_id), message)
    return len(due)


async def on_evict(ctx: WorkerContext, evict: OperationEvict) -> None:
    op_id = evict.operation_id
    operations = ctx.tables.operations
    state = operations.load(op_id)
    if state is None:
        if ctx.tables.early_controls.get(op_id) is not None:
            ctx.tables.early_controls.drop(op_id)
            log.info("operation %s: early control forgotten: its request never came", op_id)
        return
    if evict.archived_version is not None:
        await _let_go(ctx, op_id, evict.archived_version)
        return
    cutoff = now() - timedelta(seconds=ctx.settings.finished_retention_seconds)
    if not operations.finished_by(op_id, cutoff):
        return  # a replayed ask, or the operation was judged afresh meanwhile
    snapshot = state.snapshot()
    archived = OperationEvict(
        operation_id=op_id, sponsor_id=evict.sponsor_id, archived_version=snapshot.version
    )
    key = sponsor_key(evict.sponsor_id)
    await ctx.behind.later(
        rows.snapshot_row(snapshot), then=partial(ctx.send, ctx.out.operations, key, archived)
    )


async def _let_go(ctx: WorkerContext, op_id: str, archived_version: int) -> None:
    """The snapshot of ``archived_version`` is stored: the operation leaves the tables and
    the status topic, unless it changed since (the next tick archives the newer one)."""
    operations = ctx.tables.operations
    state = operations.load(op_id)
    if state is None or state.version != archived_version:
        return
    operations.drop(op_id)
    ctx.tables.early_controls.drop(op_id)
    ctx.registry.forget(op_id)
    await ctx.unpublish(op_id)
    log.info(
        "operation %s: %s with %d/%d items; archived, left the worker's tables",
        op_id,
        state.status.value,
        state.processed_items,
        state.total_items,
        extra=logs.about(op_id, state.sponsor_id),
    )
