"""The control agent: cancel, pause, resume and rethrottle, from the control topic.

A command that arrives before its operation's request (another topic, no order between
them) is kept in the ``early-controls`` table and applied when the request comes.
"""

from __future__ import annotations

import logging

from faust.types import EventT

from core import logs
from schemas.jobs import JobControl
from schemas.messages import ControlAction, ControlCommand
from streams.context import WorkerContext, check_key, now
from streams.gates import apply_throttle
from streams.progress import pause, request_cancel, resume, rethrottle

log = logging.getLogger("bulkops.worker")

_DONE = {
    ControlAction.CANCEL: "cancelled",
    ControlAction.PAUSE: "paused",
    ControlAction.RESUME: "resumed",
    ControlAction.RETHROTTLE: "rethrottled",
}


async def handle(ctx: WorkerContext, event: EventT[bytes]) -> None:
    command = ControlCommand.model_validate_json(event.value)
    check_key(event, command.sponsor_id)
    op_id, action = command.operation_id, command.action
    operations = ctx.tables.operations
    state = operations.load(op_id)
    if state is None:
        if action is ControlAction.RETHROTTLE:
            log.info("operation %s: rethrottle of an unknown operation ignored", op_id)
            return
        ctx.tables.early_controls.keep(op_id, command.sponsor_id, action, now())
        log.info("operation %s: %s kept until its request arrives", op_id, action.value)
        return
    moment = now()
    if action is ControlAction.CANCEL:
        changed = request_cancel(state, moment)
    elif action is ControlAction.PAUSE:
        changed = pause(state, moment)
    elif action is ControlAction.RETHROTTLE:
        assert command.throttle is not None
        changed = rethrottle(state, command.throttle, moment)
    else:
        changed = resume(state, moment)
    if not changed:
        log.info(
            "operation %s: %s by %s ignored: %s",
            op_id,
            action.value,
            command.requested_by,
            "cancelling" if state.stop_reason == "CANCELLED" else state.status.value,
        )
        return
    if action is ControlAction.CANCEL:
        ctx.registry.stops[op_id] = "CANCELLED"
    operations.save(state)
    if action is ControlAction.CANCEL and state.job is not None:
        await tell_job_workers(ctx, state.job.job_type, op_id, state.sponsor_id)
    if action is ControlAction.RETHROTTLE and state.throttle is not None:
        await apply_throttle(ctx, op_id, state.throttle)
    await ctx.publish(state)
    log.info(
        "operation %s: %s by %s at %d/%d items%s",
        op_id,
        _DONE[action],
        command.requested_by,
        state.processed_items,
        state.total_items,
        f": {state.throttle.model_dump(exclude_none=True)}"
        if action is ControlAction.RETHROTTLE and state.throttle
        else "",
        extra=logs.about(op_id, state.sponsor_id),
    )


async def tell_job_workers(
    ctx: WorkerContext, job_type: str, operation_id: str, sponsor_id: int
) -> None:
    """A cancelled job operation: its type's workers drop the batches they have not started
    (their Skipped answers settle those batches at once, not at their timeout)."""
    notice = JobControl(
        operation_id=operation_id, sponsor_id=sponsor_id, job_type=job_type, at=now()
    )
    await ctx.send(ctx.out.job_control, operation_id.encode(), notice)
