"""The explode agent, on the operations topic: registers operations and turns them into item
batches (all at once for codes, chunk by chunk for link sends), and settles submissions the
API could not finish. Releases, holds and re-drives are in :mod:`streams.agents.release`.

One actor per partition: everything here for one sponsor runs in order, which is what makes
code reservations and serial ranges safe without locks.
"""

from __future__ import annotations

import logging

from faust.types import EventT

from core import logs, metrics
from core.topics import DEFAULTS_KEY, sponsor_key
from schemas.messages import (
    BatchHold,
    BatchSunk,
    ControlAction,
    ItemsChunk,
    JobItemsChunk,
    OperationAbort,
    OperationEvict,
    OperationRequested,
    OperationsMessage,
    RecipientChunk,
    Redrive,
    ReleaseTick,
)
from schemas.quotas import QuotaRefusal, QuotaUpdate
from streams import quotas
from streams.agents import evict, release
from streams.bitmaps import bit, with_bit
from streams.context import InvalidMessage, WorkerContext, check_key, now
from streams.kinds import kind_of
from streams.plan import count_batches
from streams.progress import (
    OperationState,
    is_batch_done,
    pause,
    refused,
    register,
    request_cancel,
)

log = logging.getLogger("bulkops.worker")


async def handle(ctx: WorkerContext, event: EventT[bytes]) -> None:
    message = OperationsMessage.validate_json(event.value)
    if isinstance(message, QuotaUpdate):
        await on_quota_update(ctx, event, message)
        return
    check_key(event, message.sponsor_id)
    if isinstance(message, OperationRequested):
        await on_request(ctx, event, message)
    elif isinstance(message, RecipientChunk | JobItemsChunk):
        await on_chunk(ctx, message)
    elif isinstance(message, ReleaseTick):
        await release.on_release(ctx, message)
    elif isinstance(message, BatchHold):
        check_key(event, message.batch.sponsor_id)
        await release.on_hold(ctx, message.batch)
    elif isinstance(message, Redrive):
        await release.on_redrive(ctx, message)
    elif isinstance(message, OperationEvict):
        await evict.on_evict(ctx, message)
    else:
        await on_abort(ctx, message)


async def on_request(ctx: WorkerContext, event: EventT[bytes], request: OperationRequested) -> None:
    violation = ctx.settings.size_violation(request.total_items, request.batch_size)
    if violation is not None:
        field, reason = violation
        raise InvalidMessage(f"{field}: {reason} (totalItems {request.total_items})")
    op_id = request.operation_id
    state = ctx.tables.operations.load(op_id)
    if state is not None and state.stop_reason == "QUOTA_EXCEEDED":
        if state.submission_id == request.submission_id:
            return  # a replay of the refused submission
        state = None  # a new attempt at a refused operation: judged afresh
    if state is not None and state.submission_id != request.submission_id:
        log.warning(
            "operation %s: another submission of it (%s) ignored: it was registered by %s",
            op_id,
            request.submission_id,
            state.submission_id,
        )
        return
    if state is not None:
        # A replay: what the first pass wrote may not have been stored before a crash.
        await ctx.record_request(request)
        await ctx.record_operation(state)
    if state is not None and state.status.is_terminal:
        log.info("operation %s: replayed request ignored, already %s", op_id, state.status)
        return
    if state is None:
        refusal = quotas.admit(ctx, request, event.message.partition)
        if refusal is not None:
            await _refuse(ctx, event, request, refusal)
            return
        await quotas.publish(ctx, str(request.sponsor_id))
        state = await _register(ctx, event, request)
    elif quotas.count_in(ctx, request):  # a replay after a crash that lost the count
        await quotas.publish(ctx, str(request.sponsor_id))
    batches = await kind_of(request.operation_type).explode(ctx, request, state)
    if batches:  # kinds fed by recipient chunks explode as the chunks arrive
        await release.release_or_hold(ctx, sponsor_key(request.sponsor_id), op_id, batches)


async def _register(
    ctx: WorkerContext, event: EventT[bytes], request: OperationRequested
) -> OperationState:
    op_id = request.operation_id
    batches_total = count_batches(request)
    state = register(
        request,
        batches_total=batches_total,
        serial_base=kind_of(request.operation_type).serial_base(ctx, request),
        now=now(),
        partition=event.message.partition,
        release_window=_release_window(ctx, request, batches_total),
    )
    early = ctx.tables.early_controls.get(op_id)
    if early is not None:
        ctx.tables.early_controls.drop(op_id)
    if early is ControlAction.CANCEL and request_cancel(state, now()):
        ctx.registry.stops[op_id] = "CANCELLED"
    elif early is ControlAction.PAUSE:
        pause(state, now())
    ctx.tables.operations.save(state)
    await ctx.publish(state)  # first: a submit under a quota waits for this verdict
    await ctx.record_request(request)
    await ctx.record_operation(state)
    log.info(
        "operation %s: %s of %d items for sponsor %d in %d batches",
        op_id,
        request.operation_type.value,
        request.total_items,
        request.sponsor_id,
        state.batches_total,
        extra=logs.about(op_id, request.sponsor_id),
    )
    return state


def _release_window(ctx: WorkerContext, request: OperationRequested, batches_total: int) -> int:
    """How many of the operation's batches may be out at once. A job's own bound, capped at
    half the process agent's actors: each batch out holds one until it is answered, and a
    stuck job type must not take every actor from the other operations."""
    if request.job is not None:
        return min(request.job.max_concurrency, max(1, ctx.settings.process_concurrency // 2))
    channel = request.link_send.channel.value if request.link_send else None
    return ctx.settings.release_window(
        request.total_items, batches_total, channel, request.priority
    )


async def _refuse(
    ctx: WorkerContext, event: EventT[bytes], request: OperationRequested, refusal: QuotaRefusal
) -> None:
    state = refused(request, refusal, now=now(), partition=event.message.partition)
    ctx.tables.operations.save(state)
    metrics.OPERATIONS_FINISHED.labels(state.operation_type.value, state.status.value).inc()
    await ctx.publish(state)
    await ctx.record_operation(state)
    log.info(
        "operation %s: refused for sponsor %d: %s",
        request.operation_id,
        request.sponsor_id,
        refusal.message(),
        extra=logs.about(request.operation_id, request.sponsor_id),
    )


async def on_quota_update(ctx: WorkerContext, event: EventT[bytes], update: QuotaUpdate) -> None:
    expected = DEFAULTS_KEY if update.sponsor_id is None else sponsor_key(update.sponsor_id)
    if event.message.key != expected:
        raise InvalidMessage(f"quota update keyed {event.message.key!r}, expected {expected!r}")
    await quotas.publish(ctx, quotas.apply_update(ctx, update, event.message.partition))


async def on_chunk(ctx: WorkerContext, chunk: ItemsChunk) -> None:
    operations = ctx.tables.operations
    state = operations.load(chunk.operation_id)
    if state is None or state.chunk_batch_size is None:
        raise InvalidMessage(f"items for unknown chunked operation {chunk.operation_id}")
    if state.status.is_terminal or not same_submission(state, chunk.submission_id):
        return
    batches = await kind_of(state.operation_type).explode_chunk(ctx, chunk, state)
    state = operations.load(chunk.operation_id)  # other agents moved it on during the await
    assert state is not None
    for batch in batches:
        state.exploded = with_bit(state.exploded, batch.batch_index)
    operations.save(state)
    await release.release_or_hold(ctx, sponsor_key(chunk.sponsor_id), chunk.operation_id, batches)


async def on_abort(ctx: WorkerContext, abort: OperationAbort) -> None:
    """The submission did not fully reach Kafka: stop, and settle the batches never exploded."""
    operations = ctx.tables.operations
    state = operations.load(abort.operation_id)
    if state is None or state.status.is_terminal or not same_submission(state, abort.submission_id):
        return
    state.stop_reason = "SUBMISSION_INCOMPLETE"
    ctx.registry.stops[state.operation_id] = state.stop_reason
    operations.save(state)
    log.warning(
        "operation %s: aborted: %s",
        state.operation_id,
        abort.reason,
        extra=logs.about(state.operation_id, state.sponsor_id),
    )
    size = state.chunk_batch_size or 1
    for index in range(state.batches_total):
        if bit(state.exploded, index) or is_batch_done(state, index):
            continue
        count = min(size, state.total_items - index * size)
        sunk = BatchSunk(
            operation_id=state.operation_id,
            sponsor_id=state.sponsor_id,
            batch_index=index,
            count=count,
            succeeded=0,
            failed=0,
            skipped=count,
            sunk_at=now(),
        )
        await ctx.send(ctx.out.progress, sponsor_key(state.sponsor_id), sunk)


def same_submission(state: OperationState, submission_id: str | None) -> bool:
    """Whether a message belongs to the submit attempt that registered the operation."""
    if state.submission_id == submission_id:
        return True
    log.warning(
        "operation %s: a message of another submission (%s) ignored",
        state.operation_id,
        submission_id,
    )
    return False
