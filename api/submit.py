"""Submitting operations: ``generate-codes`` and ``send-links``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Request, status

from api.auth import CurrentPrincipal, Principal
from api.deps import (
    ERRORS,
    Envelope,
    settings_of,
    sink_of,
    store_of,
    view_of,
)
from api.errors import ApiError, validation_error
from api.presenters import API_PREFIX, metrics, status_url
from api.producer import ProduceError
from api.recipients import BatchTooLarge, TemplateError, encode_chunks, prepare
from schemas.common import OperationStatus, OperationType
from schemas.messages import (
    LinkSendSpec,
    OperationAbort,
    OperationRequested,
    OperationSnapshot,
    PreparedRecipient,
    ReleaseSchedule,
)
from schemas.requests import (
    SEED_CODE_GENERATION_EXAMPLE,
    SEED_LINK_SEND_EXAMPLE,
    BulkCodeGenerationRequest,
    BulkLinkSendRequest,
)
from schemas.responses import (
    ErrorBody,
    OperationAccepted,
)
from streams.schedule import planned_start, releases_end
from streams.schedule import resolve as resolve_schedule
from streams.topics import Topics, sponsor_key
from streams.webhooks import UnsafeTarget, check_target

log = logging.getLogger("bulkops.api")

router = APIRouter(prefix=API_PREFIX, tags=["bulk-operations"], responses=ERRORS)


# Used for the submit-time estimate only; status then reports the rate actually observed.
ASSUMED_CODES_PER_SECOND = 20_000
# Recipient chunks stay well under Kafka's 1 MB message limit.
CHUNK_BYTES = 900_000


def sponsor_for_submit(principal: Principal, requested: int | None) -> int:
    if principal.is_admin:
        if requested is None:
            raise validation_error("sponsorId", "required when an Admin submits for a sponsor")
        return requested
    assert principal.sponsor_id is not None
    if requested is not None and requested != principal.sponsor_id:
        raise ApiError(403, "FORBIDDEN", "sponsorId does not match the sponsor of your token")
    return principal.sponsor_id


@router.post(
    "/generate-codes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[OperationAccepted],
    summary="Generate redeemable codes in bulk",
    responses={
        413: {"model": ErrorBody, "description": "Body over the size limit"},
        503: {"model": ErrorBody, "description": "Kafka did not acknowledge the operation"},
    },
)
async def generate_codes(
    request: Request,
    principal: CurrentPrincipal,
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
    callback = await _checked_callback(request, body.processing.callback_url)
    now = datetime.now(UTC)
    operation_id = f"codegen_{uuid.uuid4().hex}"
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
    await queue(request, snapshot, [message.model_dump_json().encode()])
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
            status=OperationStatus.QUEUED,
            total_items=body.quantity,
            created_at=now,
            estimated_completion_time=eta,
            status_url=status_url(operation_id),
            metrics=metrics(snapshot, now),
        )
    )


async def _checked_callback(request: Request, url: object | None) -> str | None:
    """The callback URL as a string, once it is known not to point inside our network."""
    if url is None:
        return None
    try:
        await asyncio.to_thread(
            check_target, str(url), allow_private=settings_of(request).webhook_allow_private
        )
    except UnsafeTarget as exc:
        raise validation_error("processing.callbackUrl", str(exc)) from exc
    return str(url)


async def queue(request: Request, snapshot: OperationSnapshot, messages: list[bytes]) -> None:
    """Put an operation's messages on its sponsor's partition, in order, acknowledged.

    All or nothing as far as the client can tell: if any message is not acknowledged the
    answer is 503, and an ``OperationAbort`` tells the worker to stop what did arrive.
    """
    settings = settings_of(request)
    topics = Topics(settings.topic_prefix)
    sink = sink_of(request)
    key = sponsor_key(snapshot.sponsor_id)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(sink.send(topics.operations.name, key, m) for m in messages)),
            timeout=settings.produce_timeout_seconds,
        )
    except (ProduceError, TimeoutError) as exc:
        log.error("operation %s: not queued: %s", snapshot.operation_id, exc)
        if len(messages) > 1:
            abort = OperationAbort(
                operation_id=snapshot.operation_id,
                sponsor_id=snapshot.sponsor_id,
                reason=f"API could not queue every message: {exc}",
            )
            with contextlib.suppress(ProduceError, TimeoutError):
                await asyncio.wait_for(
                    sink.send(topics.operations.name, key, abort.model_dump_json().encode()),
                    timeout=settings.produce_timeout_seconds,
                )
        raise ApiError(
            503, "SYSTEM_ERROR", "Queue service unavailable; nothing was started, retry later"
        ) from exc
    view_of(request).apply(snapshot)
    try:
        await sink.send(
            topics.status.name,
            snapshot.operation_id.encode(),
            snapshot.model_dump_json().encode(),
        )
    except ProduceError as exc:  # the worker publishes its own snapshot soon after
        log.warning("operation %s: queued snapshot not published: %s", snapshot.operation_id, exc)


def queued_snapshot(
    operation_id: str,
    sponsor_id: int,
    principal: Principal,
    operation_type: OperationType,
    name: str,
    total: int,
    now: datetime,
) -> OperationSnapshot:
    return OperationSnapshot(
        operation_id=operation_id,
        sponsor_id=sponsor_id,
        operation_type=operation_type,
        operation_name=name,
        requested_by=principal.subject,
        status=OperationStatus.QUEUED,
        total_items=total,
        created_at=now,
        last_updated=now,
        current_phase="Queued",
        status_message="Waiting for a worker",
        version=0,
    )


@router.post(
    "/send-links",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[OperationAccepted],
    summary="Send a personalised link to every recipient over SMS, WhatsApp or Email",
    responses={
        413: {"model": ErrorBody, "description": "Body over the size limit"},
        503: {"model": ErrorBody, "description": "Kafka did not acknowledge the operation"},
    },
)
async def send_links(
    request: Request,
    principal: CurrentPrincipal,
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
    violation = settings.size_violation(len(body.recipients), body.processing.batch_size)
    if violation is not None:
        field, reason = violation
        raise validation_error("recipients" if field == "quantity" else field, reason)
    price = settings.price(body.channel.value)
    budget = body.metadata.budget_limit
    if budget is not None and budget < price:
        raise validation_error(
            "metadata.budgetLimit", f"too small for even one {body.channel.value} message ({price})"
        )
    sponsor_id = sponsor_for_submit(principal, body.sponsor_id)
    callback = await _checked_callback(request, body.processing.callback_url)
    operation_id = f"bulk_{uuid.uuid4().hex}"
    store = store_of(request)
    try:
        prepared = await asyncio.to_thread(
            prepare,
            body,
            operation_id=operation_id,
            region=settings.default_phone_region,
            link_base_url=settings.link_base_url,
            known_codes=lambda codes: store.known_codes(sponsor_id, codes),
        )
    except TemplateError as exc:
        raise validation_error(exc.field, str(exc)) from exc
    if prepared.valid == 0:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "No recipient can be sent to: " + "; ".join(prepared.warnings()),
            prepared.details(),
        )
    spec = LinkSendSpec(
        channel=body.channel,
        subject=body.operation_name,
        batch_size=body.processing.batch_size,
        max_concurrency=body.processing.max_concurrency,
        retry_attempts=body.processing.retry_attempts,
        retry_delay_seconds=body.processing.retry_delay_seconds,
        stop_on_first_error=body.processing.stop_on_first_error,
        budget_limit=budget,
        price_per_message=price,
        recipient_chunks=1,
    )
    now = datetime.now(UTC)
    total = len(body.recipients)
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
    log.info(
        "operation %s: queued %d %s sends (%d skipped by validation) for sponsor %d by %s",
        operation_id,
        prepared.valid,
        body.channel.value,
        total - prepared.valid,
        sponsor_id,
        principal.subject,
    )
    eta = completion_estimate(
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
            status=OperationStatus.QUEUED,
            total_items=total,
            created_at=now,
            estimated_completion_time=eta,
            scheduled_start=snapshot.scheduled_start,
            status_url=status_url(operation_id),
            metrics=metrics(snapshot, now),
            validation_warnings=prepared.warnings(),
        )
    )


def completion_estimate(
    now: datetime,
    *,
    sending_seconds: float,
    scheduled: bool,
    snapshot: OperationSnapshot,
    batches: int,
) -> datetime | None:
    """Submit-time ETA: the sending time at the paced rate, after the planned start and no
    earlier than the last planned release plus one batch's share (None if never known)."""
    if not scheduled:
        return now + timedelta(seconds=sending_seconds)
    start, last = snapshot.scheduled_start, snapshot.releases_end_at
    if start is None or last is None:
        return None
    return max(
        start + timedelta(seconds=sending_seconds),
        last + timedelta(seconds=1 + sending_seconds / max(batches, 1)),
    )


async def queue_link_send(
    request: Request,
    principal: Principal,
    *,
    sponsor_id: int,
    operation_id: str,
    name: str,
    spec: LinkSendSpec,
    recipients: list[PreparedRecipient],
    now: datetime,
    retry_of: str | None = None,
    callback_url: str | None = None,
    progress_notifications: bool = False,
    schedule: ReleaseSchedule | None = None,
    operation_type: OperationType = OperationType.LINK_SEND,
) -> OperationSnapshot:
    """The header and the recipient chunks of a link send (or of another operation that
    sends to recipients, like dealer invitations), queued in order (or 503)."""
    try:
        chunks = encode_chunks(
            operation_id=operation_id,
            sponsor_id=sponsor_id,
            recipients=recipients,
            batch_size=spec.batch_size,
            max_bytes=CHUNK_BYTES,
        )
    except BatchTooLarge as exc:
        raise validation_error("processing.batchSize", str(exc)) from exc
    header = OperationRequested(
        operation_id=operation_id,
        operation_type=operation_type,
        sponsor_id=sponsor_id,
        requested_by=principal.subject,
        requested_at=now,
        total_items=len(recipients),
        operation_name=name,
        retry_of=retry_of,
        callback_url=callback_url,
        progress_notifications=progress_notifications,
        link_send=spec.model_copy(update={"recipient_chunks": len(chunks)}),
        schedule=schedule,
    )
    snapshot = queued_snapshot(
        operation_id, sponsor_id, principal, operation_type, name, len(recipients), now
    )
    snapshot.retry_of = retry_of
    if schedule is not None:
        snapshot.scheduled_start = planned_start(schedule)
        snapshot.releases_end_at = releases_end(schedule, -(-len(recipients) // spec.batch_size))
    await queue(request, snapshot, [header.model_dump_json().encode(), *chunks])
    return snapshot
