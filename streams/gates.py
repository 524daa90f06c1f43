"""Stop rules, budget and pauses as the processing code sees them, kept in the operations
table (and, for stops, in the process's registry so a check costs no table read)."""

from __future__ import annotations

import logging

from core.topics import sponsor_key
from schemas.messages import BatchHold, ItemBatch
from schemas.run_rules import Throttle
from streams.context import WorkerContext
from streams.progress import has_budget, reserve_budget

log = logging.getLogger("bulkops.worker")


class TableGate:
    """The ``OperationGate`` of :mod:`streams.sending`: stop reasons and budget reservations."""

    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx

    def stop_reason(self, operation_id: str) -> str | None:
        return self._ctx.registry.stops.get(operation_id)

    def stop(self, operation_id: str, reason: str) -> None:
        stops = self._ctx.registry.stops
        if operation_id in stops:
            return
        stops[operation_id] = reason
        operations = self._ctx.tables.operations
        state = operations.load(operation_id)
        if state is not None and state.stop_reason is None:
            state.stop_reason = reason
            operations.save(state)
            log.info("operation %s: stopping: %s", operation_id, reason)

    def reserve(self, batch: ItemBatch, wanted: int) -> int:
        if not has_budget(batch.link):
            return wanted  # no budget: nothing to reserve, no table write per batch
        operations = self._ctx.tables.operations
        state = operations.load(batch.operation_id)
        if state is None:
            return 0
        allowed = reserve_budget(state, batch.batch_index, wanted)
        operations.save(state)
        return allowed


def is_paused(ctx: WorkerContext, operation_id: str) -> bool:
    state = ctx.tables.operations.load(operation_id)
    return state is not None and state.paused_at is not None and state.stop_reason is None


async def hold_back(ctx: WorkerContext, batch: ItemBatch) -> None:
    """Back to the explode agent, which keeps the batch until the operation resumes."""
    await ctx.send(
        ctx.out.operations,
        sponsor_key(batch.sponsor_id),
        BatchHold(sponsor_id=batch.sponsor_id, batch=batch),
    )


def throttle_of(ctx: WorkerContext, operation_id: str) -> Throttle:
    """The operation's throttle as it stands (rethrottled values included)."""
    state = ctx.tables.operations.load(operation_id)
    return state.throttle if state is not None and state.throttle is not None else Throttle()


async def apply_throttle(ctx: WorkerContext, operation_id: str, throttle: Throttle) -> None:
    """Put a rethrottle into force in this process: the sends in flight of the operation and
    its own rate. (Batches not yet started read the table.)"""
    limit = ctx.registry.in_flight.get(operation_id)
    if limit is not None and throttle.max_concurrency is not None:
        await limit.resize(throttle.max_concurrency)
    ctx.pacer.set_operation_rate(operation_id, throttle.rate_per_second)
