"""Submitting operations: ``generate-codes`` and ``send-links``."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status
from fastapi.responses import JSONResponse

from api.auth import CurrentPrincipal
from api.deps import pool_of, settings_of, store_of
from api.errors import validation_error
from api.services import idempotency, link_sends, quotas
from api.services.idempotency import IdempotencyKey
from api.services.presenters import API_PREFIX, metrics, status_url
from api.services.submission import (
    DRY_RUN,
    QUOTA_EXCEEDED,
    UNAVAILABLE,
    DryRun,
    accepted_again,
    already_submitted,
    auto_pause_rule,
    checked_callback,
    dry_run_answer,
    new_submission_id,
    operation_id_for,
    queue,
    queue_link_send,
    queued_snapshot,
    sponsor_for_submit,
)
from core.schedule import planned_start, releases_end
from core.schedule import resolve as resolve_schedule
from schemas.common import OperationType
from schemas.messages import OperationRequested
from schemas.requests import (
    SEED_CODE_GENERATION_EXAMPLE,
    SEED_LINK_SEND_EXAMPLE,
    BulkCodeGenerationRequest,
    BulkLinkSendRequest,
)
from schemas.responses import (
    DryRunResult,
    Envelope,
    ErrorBody,
    OperationAccepted,
)

log = logging.getLogger("bulkops.api")

router = APIRouter(prefix=API_PREFIX, tags=["bulk-operations"])


# Used for the submit-time estimate only; status then reports the rate actually observed.
ASSUMED_CODES_PER_SECOND = 20_000


@router.post(
    "/generate-codes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[OperationAccepted],
    summary="Generate redeemable codes in bulk",
    responses={
        200: DRY_RUN,
        413: {"model": ErrorBody, "description": "Body over the size limit"},
        429: QUOTA_EXCEEDED,
        503: UNAVAILABLE,
    },
)
async def generate_codes(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    dry_run: DryRun = False,
    *,
    body: Annotated[
        BulkCodeGenerationRequest,
        Body(
            openapi_examples={
                "seed": {"summary": "The seed's example", "value": SEED_CODE_GENERATION_EXAMPLE}
            }
        ),
    ],
) -> Envelope[OperationAccepted] | JSONResponse:
    """Queue one operation that generates ``quantity`` codes and answer at once with its id.

    ``batches`` carve named slices with their own ``customPrefix`` out of ``quantity``; the
    rest take ``codePrefix``. Codes are unique across the system and unguessable.
    """
    settings = settings_of(request)
    violation = settings.size_violation(body.quantity, body.processing.batch_size)
    if violation is not None:
        raise validation_error(*violation)
    sponsor_id = sponsor_for_submit(principal, body.sponsor_id)
    if dry_run:
        now = datetime.now(UTC)
        return dry_run_answer(
            DryRunResult(
                operation_type=OperationType.CODE_GENERATION,
                total_items=body.quantity,
                valid_items=body.quantity,
                batches=-(-body.quantity // body.processing.batch_size),
                estimated_cost=0.0,
                quota=quotas.estimate(request, principal, sponsor_id, body.quantity),
                planned_start=now,
                estimated_completion_time=_codes_eta(now, body.quantity),
            )
        )
    keyed = idempotency.claim(sponsor_id, "generate-codes", idempotency_key, body)
    operation_id = operation_id_for("codegen", sponsor_id, idempotency_key)

    async def submit() -> Envelope[OperationAccepted]:
        known = idempotency.replayable(
            keyed, await already_submitted(request, keyed, operation_id, sponsor_id)
        )
        if known is not None:
            return accepted_again(response, known)
        return await _queue_codes(request, principal, sponsor_id, operation_id, body, keyed)

    return await idempotency.once(
        request, keyed, status.HTTP_202_ACCEPTED, submit, operation_id=operation_id
    )


def _codes_eta(now: datetime, quantity: int) -> datetime:
    return now + timedelta(seconds=1 + quantity / ASSUMED_CODES_PER_SECOND)


async def _queue_codes(
    request: Request,
    principal: CurrentPrincipal,
    sponsor_id: int,
    operation_id: str,
    body: BulkCodeGenerationRequest,
    keyed: idempotency.Claim | None,
) -> Envelope[OperationAccepted]:
    admission = quotas.admission_wanted(request, principal, sponsor_id, body.quantity)
    callback = await checked_callback(request, body.processing.callback_url)
    now = datetime.now(UTC)
    submission_id = new_submission_id()
    message = OperationRequested(
        operation_id=operation_id,
        operation_type=OperationType.CODE_GENERATION,
        sponsor_id=sponsor_id,
        requested_by=principal.subject,
        requested_at=now,
        total_items=body.quantity,
        callback_url=callback,
        progress_notifications=body.processing.send_progress_notifications,
        code_generation=body.model_copy(update={"sponsor_id": sponsor_id}),
        submission_id=submission_id,
        quota_exempt=quotas.exempt(request, principal),
        request_hash=keyed.request_hash if keyed else None,
        auto_pause=auto_pause_rule(body.processing),
        metadata=body.metadata,
        priority=body.priority,
    )
    snapshot = queued_snapshot(
        operation_id,
        sponsor_id,
        principal,
        OperationType.CODE_GENERATION,
        body.operation_name,
        body.quantity,
        now,
        body.priority,
    )
    snapshot.request_hash = message.request_hash
    snapshot = await queue(
        request,
        snapshot,
        [message.model_dump_json().encode()],
        submission_id=submission_id,
        admission=admission,
    )
    log.info(
        "operation %s: queued %d codes for sponsor %d by %s",
        operation_id,
        body.quantity,
        sponsor_id,
        principal.subject,
    )
    return Envelope(
        data=OperationAccepted(
            operation_id=operation_id,
            operation_type=OperationType.CODE_GENERATION,
            status=snapshot.status,
            total_items=body.quantity,
            created_at=now,
            estimated_completion_time=_codes_eta(now, body.quantity),
            status_url=status_url(operation_id),
            metrics=metrics(snapshot, now),
        )
    )


@router.post(
    "/send-links",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[OperationAccepted],
    summary="Send a personalised link to every recipient over SMS, WhatsApp or Email",
    responses={
        200: DRY_RUN,
        413: {"model": ErrorBody, "description": "Body over the size limit"},
        429: QUOTA_EXCEEDED,
        503: UNAVAILABLE,
    },
)
async def send_links(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    dry_run: DryRun = False,
    *,
    body: Annotated[
        BulkLinkSendRequest,
        Body(
            openapi_examples={
                "seed": {"summary": "The seed's example", "value": SEED_LINK_SEND_EXAMPLE}
            }
        ),
    ],
) -> Envelope[OperationAccepted] | JSONResponse:
    """Validate every recipient, render its message, and queue one send per valid recipient.

    Invalid recipients (bad or missing address, duplicates, unknown sponsorship codes) are
    reported in ``validationWarnings`` and end ``Skipped``; if none is valid the answer is 422.
    Templates may use ``{name}``, ``{link}``, ``{code}`` and any ``personalizationData`` key.
    """
    settings = settings_of(request)
    link_sends.check_request(settings, body)
    sponsor_id = sponsor_for_submit(principal, body.sponsor_id)
    if dry_run:
        return dry_run_answer(await _plan_links(request, principal, sponsor_id, body))
    keyed = idempotency.claim(sponsor_id, "send-links", idempotency_key, body)
    operation_id = operation_id_for("bulk", sponsor_id, idempotency_key)

    async def submit() -> Envelope[OperationAccepted]:
        known = idempotency.replayable(
            keyed, await already_submitted(request, keyed, operation_id, sponsor_id)
        )
        if known is not None:
            return accepted_again(response, known)
        return await _queue_links(request, principal, sponsor_id, operation_id, body, keyed)

    return await idempotency.once(
        request, keyed, status.HTTP_202_ACCEPTED, submit, operation_id=operation_id
    )


async def _plan_links(
    request: Request, principal: CurrentPrincipal, sponsor_id: int, body: BulkLinkSendRequest
) -> DryRunResult:
    """Everything a submit checks and plans, without queueing: the same 422s and warnings."""
    settings = settings_of(request)
    await checked_callback(request, body.processing.callback_url)
    prepared = await asyncio.to_thread(
        link_sends.prepared_recipients,
        body,
        operation_id=operation_id_for("bulk", sponsor_id, None),
        sponsor_id=sponsor_id,
        settings=settings,
        lookups=store_of(request).inventory,
        pool=pool_of(request),
    )
    now = datetime.now(UTC)
    schedule = resolve_schedule(body.scheduling, now)
    total = len(body.recipients)
    batches = -(-total // body.processing.batch_size)
    start = (planned_start(schedule) if schedule is not None else now) or now
    last = releases_end(schedule, batches) if schedule is not None else None
    sending = 1 + prepared.valid / settings.send_rate(body.channel.value)
    finish = max(
        start + timedelta(seconds=sending),
        (last or start) + timedelta(seconds=1 + sending / max(batches, 1)),
    )
    return DryRunResult(
        operation_type=OperationType.LINK_SEND,
        total_items=total,
        valid_items=prepared.valid,
        batches=batches,
        estimated_cost=round(prepared.valid * settings.price(body.channel.value), 6),
        validation_warnings=prepared.warnings(),
        quota=quotas.estimate(request, principal, sponsor_id, total),
        planned_start=start,
        releases_end_at=last,
        estimated_completion_time=finish,
    )


async def _queue_links(
    request: Request,
    principal: CurrentPrincipal,
    sponsor_id: int,
    operation_id: str,
    body: BulkLinkSendRequest,
    keyed: idempotency.Claim | None,
) -> Envelope[OperationAccepted]:
    settings = settings_of(request)
    callback = await checked_callback(request, body.processing.callback_url)
    prepared = await asyncio.to_thread(
        link_sends.prepared_recipients,
        body,
        operation_id=operation_id,
        sponsor_id=sponsor_id,
        settings=settings,
        lookups=store_of(request).inventory,
        pool=pool_of(request),
    )
    spec = link_sends.link_spec(settings, body)
    now = datetime.now(UTC)
    schedule = resolve_schedule(body.scheduling, now)
    snapshot = await queue_link_send(
        request,
        principal,
        sponsor_id=sponsor_id,
        operation_id=operation_id,
        name=body.operation_name,
        spec=spec,
        recipients=prepared.recipients,
        now=now,
        callback_url=callback,
        progress_notifications=body.processing.send_progress_notifications,
        schedule=schedule,
        request_hash=keyed.request_hash if keyed else None,
        auto_pause=auto_pause_rule(body.processing),
        metadata=body.metadata.model_dump(mode="json", by_alias=True, exclude_none=True),
        priority=body.priority,
    )
    total = len(body.recipients)
    log.info(
        "operation %s: queued %d %s sends (%d skipped by validation) for sponsor %d by %s",
        operation_id,
        prepared.valid,
        body.channel.value,
        total - prepared.valid,
        sponsor_id,
        principal.subject,
    )
    eta = link_sends.completion_estimate(
        now,
        sending_seconds=1 + prepared.valid / settings.send_rate(body.channel.value),
        scheduled=schedule is not None,
        snapshot=snapshot,
        batches=-(-total // spec.batch_size),
    )
    return Envelope(
        data=OperationAccepted(
            operation_id=operation_id,
            operation_type=OperationType.LINK_SEND,
            status=snapshot.status,
            total_items=total,
            created_at=now,
            estimated_completion_time=eta,
            scheduled_start=snapshot.scheduled_start,
            status_url=status_url(operation_id),
            metrics=metrics(snapshot, now),
            validation_warnings=prepared.warnings(),
        )
    )
