"""Submitting operations: ``generate-codes`` and ``send-links``."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Request, status

from api.auth import CurrentPrincipal
from api.deps import settings_of, store_of
from api.errors import validation_error
from api.services import link_sends, quotas
from api.services.presenters import API_PREFIX, metrics, status_url
from api.services.submission import (
    QUOTA_EXCEEDED,
    IdempotencyKey,
    already_submitted,
    checked_callback,
    new_submission_id,
    operation_id_for,
    queue,
    queue_link_send,
    queued_snapshot,
    sponsor_for_submit,
)
from core.schedule import resolve as resolve_schedule
from schemas.common import OperationType
from schemas.messages import OperationRequested, OperationSnapshot
from schemas.requests import (
    SEED_CODE_GENERATION_EXAMPLE,
    SEED_LINK_SEND_EXAMPLE,
    BulkCodeGenerationRequest,
    BulkLinkSendRequest,
)
from schemas.responses import (
    Envelope,
    ErrorBody,
    OperationAccepted,
)

log = logging.getLogger("bulkops.api")

router = APIRouter(prefix=API_PREFIX, tags=["bulk-operations"])


# Used for the submit-time estimate only; status then reports the rate actually observed.
ASSUMED_CODES_PER_SECOND = 20_000
_UNAVAILABLE = {
    "model": ErrorBody,
    "description": "Kafka did not acknowledge the operation. `details.outcome` says whether it "
    "will not run (`not_queued`: retry freely) or may still run (`unknown`: retry with the "
    "same Idempotency-Key, or check the status first).",
}


def _accepted_again(snapshot: OperationSnapshot) -> Envelope[OperationAccepted]:
    """The answer to a repeated submit: the operation its idempotency key already made."""
    return Envelope(
        data=OperationAccepted(
            operation_id=snapshot.operation_id,
            operation_type=snapshot.operation_type,
            status=snapshot.status,
            total_items=snapshot.total_items,
            created_at=snapshot.created_at,
            scheduled_start=snapshot.scheduled_start,
            status_url=status_url(snapshot.operation_id),
            metrics=metrics(snapshot, datetime.now(UTC)),
        ),
        message="Already submitted with this Idempotency-Key: this is that operation",
    )


@router.post(
    "/generate-codes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[OperationAccepted],
    summary="Generate redeemable codes in bulk",
    responses={
        413: {"model": ErrorBody, "description": "Body over the size limit"},
        429: QUOTA_EXCEEDED,
        503: _UNAVAILABLE,
    },
)
async def generate_codes(
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    *,
    body: Annotated[
        BulkCodeGenerationRequest,
        Body(
            openapi_examples={
                "seed": {"summary": "The seed's example", "value": SEED_CODE_GENERATION_EXAMPLE}
            }
        ),
    ],
) -> Envelope[OperationAccepted]:
    """Queue one operation that generates ``quantity`` codes and answer at once with its id.

    ``batches`` carve named slices with their own ``customPrefix`` out of ``quantity``; the
    rest take ``codePrefix``. Codes are unique across the system and unguessable.
    """
    settings = settings_of(request)
    violation = settings.size_violation(body.quantity, body.processing.batch_size)
    if violation is not None:
        raise validation_error(*violation)
    sponsor_id = sponsor_for_submit(principal, body.sponsor_id)
    operation_id = operation_id_for("codegen", sponsor_id, idempotency_key)
    known = already_submitted(request, operation_id, sponsor_id)
    if known is not None:
        return _accepted_again(known)
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
    )
    snapshot = queued_snapshot(
        operation_id,
        sponsor_id,
        principal,
        OperationType.CODE_GENERATION,
        body.operation_name,
        body.quantity,
        now,
    )
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
    eta = now + timedelta(seconds=1 + body.quantity / ASSUMED_CODES_PER_SECOND)
    return Envelope(
        data=OperationAccepted(
            operation_id=operation_id,
            operation_type=OperationType.CODE_GENERATION,
            status=snapshot.status,
            total_items=body.quantity,
            created_at=now,
            estimated_completion_time=eta,
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
        413: {"model": ErrorBody, "description": "Body over the size limit"},
        429: QUOTA_EXCEEDED,
        503: _UNAVAILABLE,
    },
)
async def send_links(
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    *,
    body: Annotated[
        BulkLinkSendRequest,
        Body(
            openapi_examples={
                "seed": {"summary": "The seed's example", "value": SEED_LINK_SEND_EXAMPLE}
            }
        ),
    ],
) -> Envelope[OperationAccepted]:
    """Validate every recipient, render its message, and queue one send per valid recipient.

    Invalid recipients (bad or missing address, duplicates, unknown sponsorship codes) are
    reported in ``validationWarnings`` and end ``Skipped``; if none is valid the answer is 422.
    Templates may use ``{name}``, ``{link}``, ``{code}`` and any ``personalizationData`` key.
    """
    settings = settings_of(request)
    link_sends.check_request(settings, body)
    sponsor_id = sponsor_for_submit(principal, body.sponsor_id)
    operation_id = operation_id_for("bulk", sponsor_id, idempotency_key)
    known = already_submitted(request, operation_id, sponsor_id)
    if known is not None:
        return _accepted_again(known)
    callback = await checked_callback(request, body.processing.callback_url)
    prepared = await asyncio.to_thread(
        link_sends.prepared_recipients,
        body,
        operation_id=operation_id,
        sponsor_id=sponsor_id,
        settings=settings,
        lookups=store_of(request).inventory,
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
