"""The process agent, on the items topic: one item batch at a time per actor (many actors
per partition), by the batch's operation kind, unless the operation stopped or paused."""

from __future__ import annotations

from faust.types import EventT

from core.topics import sponsor_key
from schemas.messages import ItemBatch
from streams.context import WorkerContext, check_key
from streams.gates import TableGate, hold_back
from streams.kinds import kind_of
from streams.progress import is_batch_done
from streams.sending import halting, skip_batch


async def handle(ctx: WorkerContext, event: EventT[bytes]) -> None:
    batch = ItemBatch.model_validate_json(event.value)
    check_key(event, batch.sponsor_id)
    state = ctx.tables.operations.load(batch.operation_id)
    if state is not None and (state.status.is_terminal or is_batch_done(state, batch.batch_index)):
        return  # a replay of a batch already counted: nothing left to do
    if state is not None and state.stop_reason:
        ctx.registry.stops.setdefault(batch.operation_id, state.stop_reason)
    elif state is not None and state.paused_at is not None:
        await hold_back(ctx, batch)
        return
    kind = kind_of(batch.operation_type)
    stopped = halting(TableGate(ctx), batch.operation_id)
    result = skip_batch(batch, stopped) if stopped else await kind.process(ctx, batch)
    if result is None:
        return  # handed back: to be held, or to start over after a rebalance
    result = kind.annotate(batch, result)
    await ctx.send(ctx.out.results, sponsor_key(batch.sponsor_id), result)
