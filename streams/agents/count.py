"""The count agent, on the progress topic: counts each stored batch once into its operation's
table value, records webhook attempts, and finishes operations.

Progress is counted from ``BatchSunk`` messages only, which the sink emits after the batch's
items are stored; a batch counts when its bit in the operation's bitmap flips, never again.
"""

from __future__ import annotations

import logging
from functools import partial

from faust.types import EventT

from core import logs, metrics
from schemas.messages import BatchSunk, ProgressMessage, WebhookAttempt
from streams import alerts, quotas
from streams.agents.release import ask_for_release
from streams.context import InvalidMessage, WorkerContext, check_key, now
from streams.progress import MAX_RECENT_RESULTS, OperationState, apply_batch, judge_errors
from streams.releases import wants_refill

log = logging.getLogger("bulkops.worker")

MILESTONES = (25, 50, 75)
_WEBHOOK_ATTEMPTS_KEPT = 20


async def handle(ctx: WorkerContext, event: EventT[bytes]) -> None:
    message = ProgressMessage.validate_json(event.value)
    check_key(event, message.sponsor_id)
    if isinstance(message, WebhookAttempt):
        await on_webhook_attempt(ctx, message)
    else:
        await on_batch_sunk(ctx, message)


async def on_webhook_attempt(ctx: WorkerContext, attempt: WebhookAttempt) -> None:
    operations = ctx.tables.operations
    state = operations.load(attempt.operation_id)
    if state is None:
        raise InvalidMessage(f"unknown operation {attempt.operation_id}")
    state.webhook_attempts = [*state.webhook_attempts, attempt][-_WEBHOOK_ATTEMPTS_KEPT:]
    if attempt.final and attempt.event == "operation_completed":
        state.webhook_state = "delivered" if attempt.delivered else "failed"
    state.version += 1
    state.last_updated = now()
    operations.save(state)
    if attempt.final and attempt.event == "operation_completed":
        ctx.webhooks.settled(attempt.operation_id, attempt.event)
    await ctx.publish(state)
    log.info(
        "operation %s: webhook %s attempt %d: %s",
        attempt.operation_id,
        attempt.event,
        attempt.attempt,
        "delivered" if attempt.delivered else attempt.error or attempt.status_code,
    )


async def on_batch_sunk(ctx: WorkerContext, sunk: BatchSunk) -> None:
    operations = ctx.tables.operations
    state = operations.load(sunk.operation_id)
    if state is None:
        raise InvalidMessage(f"unknown operation {sunk.operation_id}")
    if not apply_batch(state, sunk, now=now(), max_errors=ctx.settings.max_errors_in_status):
        if state.status.is_terminal:  # a replay: the end may not have been stored
            await ctx.record_operation(state, then=partial(_announce_end, ctx, state.operation_id))
        return
    metrics.count_batch(state.operation_type.value, sunk.succeeded, sunk.failed, sunk.skipped)
    state.recent_results = [*state.recent_results, *sunk.recent][-MAX_RECENT_RESULTS:]
    if state.status.is_terminal and state.callback_url:
        state.webhook_state = "pending"
    milestone = _milestone_due(state)
    if milestone:
        state.milestones_notified = milestone
    paused = judge_errors(state, sunk, now())
    alert = alerts.failure_rate_alert(state, ctx.settings)
    if alert is not None:
        state.alerts = [*state.alerts, alerts.FAILURE_RATE]
    operations.save(state)
    if alert is not None:
        ctx.alerts.raise_alert(state, alerts.FAILURE_RATE, alert)
    if milestone:
        ctx.webhooks.start(state, "progress_update", milestone=milestone)
    if not state.status.is_terminal:
        if paused is not None:
            await _paused_itself(ctx, state, paused)
            return
        ctx.registry.dirty.add(sunk.operation_id)
        if wants_refill(state, now()):
            await ask_for_release(ctx, state.operation_id, state.sponsor_id)
        return
    ctx.registry.forget(state.operation_id)
    ctx.pacer.set_operation_rate(state.operation_id, None)
    metrics.OPERATIONS_FINISHED.labels(state.operation_type.value, state.status.value).inc()
    if quotas.release(ctx, state.sponsor_id, state.operation_id):
        await quotas.publish(ctx, str(state.sponsor_id))
    await ctx.record_operation(state, then=partial(_announce_end, ctx, state.operation_id))


async def _announce_end(ctx: WorkerContext, operation_id: str) -> None:
    """Once the operation's final row is stored: its final snapshot (the latest state, read
    again: a webhook attempt may have moved it on), the completion webhook, the log line.
    Whoever sees it finished finds it in history and statistics too."""
    state = ctx.tables.operations.load(operation_id)
    if state is None:
        return
    await ctx.publish(state)
    if state.webhook_state == "pending":
        ctx.webhooks.start(state, "operation_completed")
    log.info(
        "operation %s: %s (%d succeeded, %d failed, %d skipped)",
        state.operation_id,
        state.status.value,
        state.successful_items,
        state.failed_items,
        state.skipped_items,
        extra=logs.about(state.operation_id, state.sponsor_id),
    )


async def _paused_itself(ctx: WorkerContext, state: OperationState, reason: str) -> None:
    await ctx.publish(state)
    ctx.webhooks.start(state, "operation_paused", milestone=state.version)
    log.warning(
        "operation %s: paused itself at %d/%d items: %s",
        state.operation_id,
        state.processed_items,
        state.total_items,
        reason,
        extra=logs.about(state.operation_id, state.sponsor_id),
    )


def _milestone_due(state: OperationState) -> int:
    """The progress milestone (25/50/75 %) to notify now, or 0."""
    if state.status.is_terminal or not state.progress_notifications:
        return 0
    reached = max(
        (m for m in MILESTONES if state.processed_items * 100 >= m * state.total_items),
        default=0,
    )
    return reached if reached > state.milestones_notified else 0
