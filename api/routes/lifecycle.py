"""Changing running and finished operations: cancel, pause, resume, retry failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import JSONResponse

from api.auth import CurrentPrincipal, Principal
from api.deps import (
    NOT_FOUND,
    OperationId,
    settings_of,
    sink_of,
    view_of,
    visible,
)
from api.errors import ApiError
from api.producer import ProduceError
from api.services import idempotency, retries
from api.services.idempotency import IdempotencyKey
from api.services.presenters import API_PREFIX, status_out
from api.services.submission import (
    DRY_RUN,
    QUOTA_EXCEEDED,
    DryRun,
    already_submitted,
    dry_run_answer,
    operation_id_for,
)
from core.topics import Topics, sponsor_key
from schemas.common import ErrorCategory, OperationStatus
from schemas.messages import ControlAction, ControlCommand
from schemas.requests import RethrottleRequest
from schemas.responses import (
    CancelResult,
    Envelope,
    ErrorBody,
    OperationStatusOut,
    PauseResult,
    RetryResult,
)
from schemas.run_rules import Throttle
from schemas.status import OperationSnapshot

log = logging.getLogger("bulkops.api")

router = APIRouter(prefix=API_PREFIX, tags=["bulk-operations"])
_NOT_CONFIRMED = {"model": ErrorBody, "description": "Queued; the worker has not confirmed yet"}


@router.post(
    "/cancel/{operationId}",
    response_model=Envelope[CancelResult],
    summary="Cancel a running operation",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "Already finished or already cancelled"},
        503: {"model": ErrorBody, "description": "Kafka did not take the cancel"},
        504: _NOT_CONFIRMED,
    },
)
async def cancel(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
) -> Envelope[CancelResult]:
    """Stop an operation: once this answers, no new item starts; sends in flight settle.

    Remaining items end ``Skipped`` with error code ``CANCELLED`` and the operation ends
    ``Cancelled``. An operation that finishes before the worker sees the cancel keeps its
    final status, and the answer is 409.
    """
    current = await cancel_operation(request, principal, operationId)
    return Envelope(
        message="Operation cancelled",
        data=CancelResult(
            operation_id=operationId,
            final_status=OperationStatus.CANCELLED,
            processed_items=current.processed_items,
            remaining_items=current.total_items - current.processed_items,
            cancellation_time=current.cancelled_at or datetime.now(UTC),
        ),
    )


async def cancel_operation(
    request: Request, principal: Principal, operation_id: str
) -> OperationSnapshot:
    """Cancel the caller's operation and wait for the worker to confirm it (the snapshot it
    confirmed with); 409 if it finished first. (The ticket API cancels through it too.)"""
    snapshot = visible(request, principal, operation_id)
    _refuse_finished(snapshot)
    current = await _command(
        request,
        principal,
        snapshot,
        ControlAction.CANCEL,
        lambda s: s.stop_reason == "CANCELLED" or s.status.is_terminal,
    )
    if current.status.is_terminal and current.status is not OperationStatus.CANCELLED:
        raise ApiError(
            409, "OPERATION_FINISHED", f"The operation finished first: {current.status.value}"
        )
    log.info("operation %s: cancelled by %s", operation_id, principal.subject)
    return current


async def _command(
    request: Request,
    principal: CurrentPrincipal,
    snapshot: OperationSnapshot,
    action: ControlAction,
    confirmed: Callable[[OperationSnapshot], bool],
    throttle: Throttle | None = None,
) -> OperationSnapshot:
    """Put a control command on Kafka and wait until the worker's snapshot confirms it."""
    settings = settings_of(request)
    command = ControlCommand(
        operation_id=snapshot.operation_id,
        sponsor_id=snapshot.sponsor_id,
        action=action,
        requested_by=principal.subject,
        requested_at=datetime.now(UTC),
        throttle=throttle,
    )
    try:
        await asyncio.wait_for(
            sink_of(request).send(
                Topics(settings.topic_prefix).control.name,
                sponsor_key(snapshot.sponsor_id),
                command.model_dump_json().encode(),
            ),
            timeout=settings.produce_timeout_seconds,
        )
    except (ProduceError, TimeoutError) as exc:
        raise ApiError(503, "SYSTEM_ERROR", f"{action.value.title()} not queued; retry") from exc
    current = await view_of(request).until(
        snapshot.operation_id, confirmed, settings.control_ack_timeout_seconds
    )
    if current is None:
        raise ApiError(
            504,
            f"{action.value.upper()}_NOT_CONFIRMED",
            f"The {action.value} is queued but the worker has not confirmed it yet; poll status",
        )
    return current


def _pause_result(snapshot: OperationSnapshot) -> PauseResult:
    return PauseResult(
        operation_id=snapshot.operation_id,
        status=snapshot.status,
        processed_items=snapshot.processed_items,
        remaining_items=snapshot.total_items - snapshot.processed_items,
        changed_at=snapshot.paused_at or snapshot.last_updated,
    )


@router.post(
    "/pause/{operationId}",
    response_model=Envelope[PauseResult],
    summary="Pause a running or scheduled operation",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "Finished, cancelled or already paused"},
        503: {"model": ErrorBody, "description": "Kafka did not take the pause"},
        504: _NOT_CONFIRMED,
    },
)
async def pause(
    request: Request, principal: CurrentPrincipal, operationId: OperationId
) -> Envelope[PauseResult]:
    """Hold an operation: once this answers, no new batch starts; batches already sending
    finish (at most ``maxConcurrency`` sends). Counts stay exact across pause and resume; a
    spread's clock stops while paused."""
    snapshot = visible(request, principal, operationId)
    _refuse_finished(snapshot)
    if snapshot.status is OperationStatus.PAUSED:
        raise ApiError(409, "ALREADY_PAUSED", "The operation is already paused")
    current = await _command(
        request,
        principal,
        snapshot,
        ControlAction.PAUSE,
        lambda s: s.paused_at is not None or s.status.is_terminal or s.stop_reason is not None,
    )
    if current.status is not OperationStatus.PAUSED:
        raise ApiError(
            409, "OPERATION_FINISHED", f"The operation could not be paused: {current.status.value}"
        )
    log.info("operation %s: paused by %s", operationId, principal.subject)
    return Envelope(message="Operation paused", data=_pause_result(current))


@router.post(
    "/resume/{operationId}",
    response_model=Envelope[PauseResult],
    summary="Resume a paused operation",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "Not paused"},
        503: {"model": ErrorBody, "description": "Kafka did not take the resume"},
        504: _NOT_CONFIRMED,
    },
)
async def resume(
    request: Request, principal: CurrentPrincipal, operationId: OperationId
) -> Envelope[PauseResult]:
    """Release a paused operation's batches again, from where it stopped (or wait for its
    schedule if it has not started yet)."""
    snapshot = visible(request, principal, operationId)
    _refuse_finished(snapshot)
    if snapshot.status is not OperationStatus.PAUSED:
        raise ApiError(
            409, "NOT_PAUSED", f"Only a paused operation can resume: {snapshot.status.value}"
        )
    current = await _command(
        request, principal, snapshot, ControlAction.RESUME, lambda s: s.paused_at is None
    )
    log.info("operation %s: resumed by %s", operationId, principal.subject)
    return Envelope(message="Operation resumed", data=_pause_result(current))


_RETHROTTLE_EXAMPLES = {
    "slower": {
        "summary": "Fewer sends at once, 20 per second",
        "value": {"maxConcurrency": 2, "ratePerSecond": 20},
    },
    "spread": {"summary": "Spread over three hours", "value": {"spreadDurationMinutes": 180}},
}


@router.patch(
    "/{operationId}",
    response_model=Envelope[OperationStatusOut],
    summary="Rethrottle a running or scheduled send: concurrency, own rate, spread",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "Finished, not a send, or nothing to spread"},
        503: {"model": ErrorBody, "description": "Kafka did not take the change"},
        504: _NOT_CONFIRMED,
    },
)
async def rethrottle(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
    change: Annotated[RethrottleRequest, Body(openapi_examples=_RETHROTTLE_EXAMPLES)],
) -> Envelope[OperationStatusOut]:
    """Takes effect within a second: sends in flight shrink or grow to ``maxConcurrency``,
    new sends keep to ``ratePerSecond``, and the batches not yet released of a spread send
    are spread over ``spreadDurationMinutes`` from its start. The status shows the values
    in force (``throttle``)."""
    snapshot = visible(request, principal, operationId)
    _refuse_finished(snapshot)
    if snapshot.channel is None:
        raise ApiError(
            409, "NOT_A_SEND", "Only sends (link sends, dealer invitations) can be rethrottled"
        )
    if change.spread_duration_minutes is not None and snapshot.releases_end_at is None:
        raise ApiError(
            409,
            "NOT_SPREAD",
            "Only a scheduled send has a spread to change",
            {"field": "spreadDurationMinutes"},
        )
    limit = settings_of(request).send_rate(snapshot.channel.value)
    rate = change.rate_per_second
    capped = rate is not None and rate > limit
    throttle = Throttle(
        max_concurrency=change.max_concurrency,
        rate_per_second=min(rate, limit) if rate is not None else None,
        spread_seconds=(
            change.spread_duration_minutes * 60
            if change.spread_duration_minutes is not None
            else None
        ),
    )
    current = await _command(
        request,
        principal,
        snapshot,
        ControlAction.RETHROTTLE,
        lambda s: s.status.is_terminal or _in_force(s, throttle),
        throttle=throttle,
    )
    if not _in_force(current, throttle):
        raise ApiError(
            409, "OPERATION_FINISHED", f"The operation finished first: {current.status.value}"
        )
    log.info(
        "operation %s: rethrottled by %s: %s",
        operationId,
        principal.subject,
        throttle.model_dump(exclude_none=True),
    )
    message = "Rethrottled"
    if capped:
        message += f": ratePerSecond capped to the {snapshot.channel.value} limit of {limit:g}/s"
    return Envelope(message=message, data=status_out(current, datetime.now(UTC)))


def _in_force(snapshot: OperationSnapshot, wanted: Throttle) -> bool:
    current = snapshot.throttle
    if current is None:
        return False
    return all(
        getattr(current, name) == value
        for name, value in wanted.model_dump(exclude_none=True, by_alias=False).items()
    )


def _refuse_finished(snapshot: OperationSnapshot) -> None:
    if snapshot.status.is_terminal:
        raise ApiError(
            409,
            "OPERATION_FINISHED",
            f"The operation is already {snapshot.status.value}",
            {"status": snapshot.status.value},
        )
    if snapshot.stop_reason == "CANCELLED":
        raise ApiError(409, "ALREADY_CANCELLED", "The operation is already being cancelled")


_retry_locks: dict[str, asyncio.Lock] = {}


@router.post(
    "/retry/{operationId}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[RetryResult],
    summary="Re-send only the retryable failed items, as a new linked operation",
    responses={
        **NOT_FOUND,
        200: DRY_RUN,
        409: {"model": ErrorBody, "description": "Still running, or nothing to retry"},
        429: QUOTA_EXCEEDED,
    },
)
async def retry_failed(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    operationId: OperationId,
    error_code: Annotated[str | None, Query(alias="errorCode", max_length=64)] = None,
    error_category: Annotated[ErrorCategory | None, Query(alias="errorCategory")] = None,
    idempotency_key: IdempotencyKey = None,
    dry_run: DryRun = False,
) -> Envelope[RetryResult] | JSONResponse:
    """Items that failed with a retryable error go out again in a new operation; each keeps
    its original item id as the provider idempotency key. Narrow the retry with
    ``errorCode`` or ``errorCategory``. While a retry of this operation runs, calling again
    returns that same retry operation."""
    snapshot = visible(request, principal, operationId)
    if not snapshot.status.is_terminal:
        raise ApiError(409, "OPERATION_RUNNING", "Retry once the operation has finished")
    category = error_category.value if error_category else None
    if dry_run:
        return dry_run_answer(
            await retries.plan(request, principal, snapshot, error_code, category)
        )
    keyed = idempotency.claim(
        snapshot.sponsor_id, "retry", idempotency_key, operationId, error_code, category
    )

    retry_id = operation_id_for("retry", snapshot.sponsor_id, idempotency_key)

    async def submit() -> Envelope[RetryResult]:
        known = idempotency.replayable(
            keyed, await already_submitted(request, keyed, retry_id, snapshot.sponsor_id)
        )
        lock = _retry_locks.setdefault(operationId, asyncio.Lock())
        async with lock:
            found = await retries.failures_of(request, snapshot, error_code, category)
            if known is not None:
                response.headers[idempotency.REPLAYED_HEADER] = "true"
                return Envelope(data=found.result(operationId, known.operation_id))
            running = view_of(request).running_retry_of(operationId)
            if running is not None:
                return Envelope(
                    message="A retry of this operation is already running",
                    data=found.result(operationId, running.operation_id),
                )
            original = await retries.retryable_request(request, snapshot, found)
            count = await retries.queue_retry(
                request,
                principal,
                original,
                found,
                retry_id=retry_id,
                request_hash=keyed.request_hash if keyed else None,
            )
        return Envelope(
            message=f"{count} failed items queued again",
            data=found.result(operationId, retry_id),
        )

    return await idempotency.once(
        request, keyed, status.HTTP_202_ACCEPTED, submit, operation_id=retry_id
    )
