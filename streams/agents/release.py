"""Releasing and holding item batches, in the explode agent (serialised per sponsor).

Nothing ever waits inside a process actor for time to pass. The explode agent decides, per
batch, whether it may go to the items topic now (:func:`streams.releases.release_quota`:
the schedule, a pause, a stop, whether a link send's chunks all arrived) and holds the rest
as one bit each; a link-send batch is stored when its chunk arrives, a code batch is planned
again from the request. Releases are asked for with ``ReleaseTick`` messages: by a timer
(schedules, resumes) and by the count agent when an operation's release window has room;
the stall watchdog asks for re-drives with ``Redrive`` messages.
"""

from __future__ import annotations

import asyncio
import logging

from core.topics import sponsor_key
from schemas.common import OperationStatus, OperationType
from schemas.messages import ItemBatch, Redrive, ReleaseTick
from streams.agents.sink import summarise
from streams.bitmaps import bit
from streams.context import Outbox, WorkerContext, now
from streams.kinds import kind_of
from streams.progress import is_batch_done, outstanding
from streams.releases import due_batches, mark_held, mark_released, release_quota

log = logging.getLogger("bulkops.worker")

#: A release asked for and not yet handled is asked for again after this long.
TICK_RETRY_SECONDS = 5.0


async def ask_for_release(ctx: WorkerContext, operation_id: str, sponsor_id: int) -> bool:
    """Ask the explode agent (which owns the operation's table value) for a release: one
    ``ReleaseTick`` outstanding per operation, or again after :data:`TICK_RETRY_SECONDS`."""
    clock = asyncio.get_running_loop().time()
    ticking = ctx.registry.ticking
    if clock - ticking.get(operation_id, -TICK_RETRY_SECONDS) < TICK_RETRY_SECONDS:
        return False
    ticking[operation_id] = clock
    tick = ReleaseTick(operation_id=operation_id, sponsor_id=sponsor_id)
    await ctx.send(ctx.out.operations, sponsor_key(sponsor_id), tick)
    return True


def batches_outbox(ctx: WorkerContext, operation_type: OperationType) -> Outbox:
    """Where an operation's batches are handed out to be processed: the items topic, or the
    work topic when the worker runs processor processes and its batches need nothing but
    themselves (:mod:`streams.processor`)."""
    stateless = ctx.settings.processors > 0 and kind_of(operation_type).stateless
    return ctx.out.work if stateless else ctx.out.items


async def release_or_hold(
    ctx: WorkerContext, key: bytes, operation_id: str, batches: list[ItemBatch]
) -> None:
    """Send the batches that may go now; hold the others until they are due.

    On a replay, a batch already released goes again (processing it is idempotent) and one
    already held stays held. Releases are saved before the sends, so a crash in between
    only repeats work.
    """
    operations = ctx.tables.operations
    moment = now()
    state = operations.load(operation_id)
    assert state is not None
    quota = release_quota(state, moment)
    to_send: list[ItemBatch] = []
    to_hold: list[ItemBatch] = []
    for batch in batches:
        index = batch.batch_index
        if is_batch_done(state, index) or bit(state.held, index):
            continue
        if bit(state.released, index):
            to_send.append(batch)
        elif quota > 0:
            quota -= 1
            mark_released(state, index, moment)
            to_send.append(batch)
        else:
            to_hold.append(batch)
    operations.save(state)
    outbox = batches_outbox(ctx, state.operation_type)
    for batch in to_send:
        await ctx.send(outbox, key, batch)
    if to_hold:
        keep(ctx, operation_id, to_hold)
        log.info(
            "operation %s: %d batches held until due (schedule, pause or release window)",
            operation_id,
            len(to_hold),
        )


def keep(ctx: WorkerContext, operation_id: str, batches: list[ItemBatch]) -> None:
    """Hold batches until they are due: one bit each (see the module doc)."""
    operations = ctx.tables.operations
    state = operations.load(operation_id)
    assert state is not None
    for batch in batches:
        mark_held(state, batch.batch_index)
    operations.save(state)


async def on_hold(ctx: WorkerContext, batch: ItemBatch) -> None:
    """A batch that reached a paused operation: hold it, unless it may go again now."""
    state = ctx.tables.operations.load(batch.operation_id)
    if state is None or state.status.is_terminal or is_batch_done(state, batch.batch_index):
        return
    if state.paused_at is None:
        outbox = batches_outbox(ctx, state.operation_type)
        await ctx.send(outbox, sponsor_key(batch.sponsor_id), batch)
        return
    keep(ctx, batch.operation_id, [batch])
    log.debug("operation %s: batch %d held while paused", batch.operation_id, batch.batch_index)


async def on_release(ctx: WorkerContext, tick: ReleaseTick) -> None:
    """Send the held batches that are due now, oldest first.

    The sends are on the broker before the table says they were released: a crash between
    the two sends them again, never loses them.
    """
    ctx.registry.ticking.pop(tick.operation_id, None)
    operations = ctx.tables.operations
    moment = now()
    state = operations.load(tick.operation_id)
    if state is None or state.status.is_terminal or state.held_count == 0:
        return
    indexes = due_batches(state, moment, ctx.settings.release_batches_per_tick)
    if not indexes:
        return
    held = await kind_of(state.operation_type).stored_batches(ctx, state, indexes)
    missing = [i for i in indexes if i not in held]
    if missing:
        log.error("operation %s: held batches %s not found", tick.operation_id, missing[:10])
    outbox = batches_outbox(ctx, state.operation_type)
    deliveries = [
        await outbox.send(key=sponsor_key(state.sponsor_id), value=held[i].encode())
        for i in indexes
        if i in held
    ]
    await asyncio.gather(*deliveries)
    state = operations.load(tick.operation_id)
    assert state is not None
    was_queued = state.status is OperationStatus.QUEUED
    for index in held:
        mark_released(state, index, moment)
    operations.save(state)
    # Window refills come every few batches: worth a line only at debug level.
    log.log(
        logging.INFO if was_queued or not state.release_window else logging.DEBUG,
        "operation %s: released %d held batches%s",
        tick.operation_id,
        len(held),
        " (scheduled start reached)" if was_queued else "",
    )
    await ctx.publish(state)


async def on_redrive(ctx: WorkerContext, redrive: Redrive) -> None:
    """Drive on batches the stall watchdog found released and never counted.

    A batch whose items the store already holds is counted from them (its progress message
    was lost); any other goes to the items topic again (its item batch or its results were
    lost). Both are idempotent, like every replay.
    """
    state = ctx.tables.operations.load(redrive.operation_id)
    if state is None or state.status.is_terminal:
        return
    wanted = set(outstanding(state))
    indexes = [i for i in redrive.batch_indexes if i in wanted]
    if not indexes:
        return
    messages = await kind_of(state.operation_type).stored_batches(ctx, state, indexes)
    key = sponsor_key(state.sponsor_id)
    counted, resent = 0, 0
    for index in indexes:
        payload = messages.get(index)
        if payload is None:
            log.error(
                "operation %s: batch %d cannot be re-driven: not stored", state.operation_id, index
            )
            continue
        batch = ItemBatch.model_validate_json(payload)
        stored = await ctx.with_retry(
            f"operation {state.operation_id}: reading the items of batch {index}",
            ctx.state.stored_result,
            batch,
        )
        if stored is not None:
            await ctx.send(ctx.out.progress, key, summarise(ctx, stored))
            counted += 1
        else:
            await batches_outbox(ctx, state.operation_type).send(key=key, value=payload.encode())
            resent += 1
    log.warning(
        "operation %s: re-drove %d batches released and never counted: "
        "%d counted from their stored items, %d sent again (first: %s)",
        state.operation_id,
        counted + resent,
        counted,
        resent,
        indexes[:10],
    )
