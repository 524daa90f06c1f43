"""The seed's endpoints under ``/api/v1/bulk-operations``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Body, Path, Query, Request, status
from pydantic import Field

from analytics.store import AnalyticsStore
from api.auth import CurrentPrincipal, Principal
from api.errors import ApiError, not_found, validation_error
from api.presenters import API_PREFIX, history_entry, metrics, status_out, status_url, timespan
from api.producer import MessageSink, ProduceError
from api.recipients import BatchTooLarge, TemplateError, encode_chunks, prepare
from api.status_view import StatusView
from bulkops.settings import ApiSettings
from schemas.common import ErrorCategory, ItemStatus, OperationStatus, OperationType
from schemas.messages import (
    OPERATION_ID_PATTERN,
    ControlAction,
    ControlCommand,
    LinkSendSpec,
    OperationAbort,
    OperationRequested,
    OperationSnapshot,
    PreparedRecipient,
)
from schemas.requests import (
    SEED_CODE_GENERATION_EXAMPLE,
    SEED_LINK_SEND_EXAMPLE,
    BulkCodeGenerationRequest,
    BulkLinkSendRequest,
)
from schemas.responses import (
    ErrorBody,
    GeneratedCode,
    HistoryEntry,
    OperationAccepted,
    OperationStatusOut,
    OutModel,
    Pagination,
)
from streams.topics import Topics, sponsor_key
from streams.webhooks import UnsafeTarget, check_target, sponsor_secret

log = logging.getLogger("bulkops.api")

T = TypeVar("T")

# Used for the submit-time estimate only; status then reports the rate actually observed.
ASSUMED_CODES_PER_SECOND = 20_000
# Recipient chunks stay well under Kafka's 1 MB message limit.
CHUNK_BYTES = 900_000


class Envelope(OutModel, Generic[T]):
    success: bool = True
    message: str | None = None
    data: T


class CodesPage(OutModel):
    operation_id: str
    codes: list[GeneratedCode]
    next_after_index: int | None = Field(description="Pass as afterIndex to get the next page.")
    total_codes: int
    unique_codes: int


class CancelResult(OutModel):
    operation_id: str
    final_status: OperationStatus
    processed_items: int
    remaining_items: int
    cancellation_time: datetime


class HistoryPage(OutModel):
    success: bool = True
    data: list[HistoryEntry]
    pagination: Pagination


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, expired or forged token"},
    403: {"model": ErrorBody, "description": "Role not allowed"},
    422: {"model": ErrorBody, "description": "Invalid request, with the field at fault"},
}
OperationId = Annotated[str, Path(pattern=OPERATION_ID_PATTERN, max_length=64)]

router = APIRouter(prefix=API_PREFIX, tags=["bulk-operations"], responses=ERRORS)


def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def _view(request: Request) -> StatusView:
    return request.app.state.status_view


def _store(request: Request) -> AnalyticsStore:
    return request.app.state.store


def _sink(request: Request) -> MessageSink:
    return request.app.state.message_sink


def _sponsor_for_submit(principal: Principal, requested: int | None) -> int:
    if principal.is_admin:
        if requested is None:
            raise validation_error("sponsorId", "required when an Admin submits for a sponsor")
        return requested
    assert principal.sponsor_id is not None
    if requested is not None and requested != principal.sponsor_id:
        raise ApiError(403, "FORBIDDEN", "sponsorId does not match the sponsor of your token")
    return principal.sponsor_id


def _visible(request: Request, principal: Principal, operation_id: str) -> OperationSnapshot:
    snapshot = _view(request).get(operation_id)
    if snapshot is None or not principal.can_see(snapshot.sponsor_id):
        raise not_found(operation_id)
    return snapshot


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
    settings = _settings(request)
    violation = settings.size_violation(body.quantity, body.processing.batch_size)
    if violation is not None:
        raise validation_error(*violation)
    sponsor_id = _sponsor_for_submit(principal, body.sponsor_id)
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
    snapshot = _queued_snapshot(
        operation_id,
        sponsor_id,
        principal,
        OperationType.CODE_GENERATION,
        body.operation_name,
        body.quantity,
        now,
    )
    await _queue(request, snapshot, [message.model_dump_json().encode()])
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
            check_target, str(url), allow_private=_settings(request).webhook_allow_private
        )
    except UnsafeTarget as exc:
        raise validation_error("processing.callbackUrl", str(exc)) from exc
    return str(url)


async def _queue(request: Request, snapshot: OperationSnapshot, messages: list[bytes]) -> None:
    """Put an operation's messages on its sponsor's partition, in order, acknowledged.

    All or nothing as far as the client can tell: if any message is not acknowledged the
    answer is 503, and an ``OperationAbort`` tells the worker to stop what did arrive.
    """
    settings = _settings(request)
    topics = Topics(settings.topic_prefix)
    sink = _sink(request)
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
    _view(request).apply(snapshot)
    try:
        await sink.send(
            topics.status.name,
            snapshot.operation_id.encode(),
            snapshot.model_dump_json().encode(),
        )
    except ProduceError as exc:  # the worker publishes its own snapshot soon after
        log.warning("operation %s: queued snapshot not published: %s", snapshot.operation_id, exc)


def _queued_snapshot(
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
    settings = _settings(request)
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
    sponsor_id = _sponsor_for_submit(principal, body.sponsor_id)
    callback = await _checked_callback(request, body.processing.callback_url)
    operation_id = f"bulk_{uuid.uuid4().hex}"
    store = _store(request)
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
    snapshot = await _queue_link_send(
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
    eta = now + timedelta(seconds=1 + prepared.valid / settings.send_rate(body.channel.value))
    return Envelope(
        data=OperationAccepted(
            operation_id=operation_id,
            operation_type=OperationType.LINK_SEND,
            status=OperationStatus.QUEUED,
            total_items=total,
            created_at=now,
            estimated_completion_time=eta,
            status_url=status_url(operation_id),
            metrics=metrics(snapshot, now),
            validation_warnings=prepared.warnings(),
        )
    )


async def _queue_link_send(
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
) -> OperationSnapshot:
    """The header and the recipient chunks of a link send, queued in order (or 503)."""
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
        operation_type=OperationType.LINK_SEND,
        sponsor_id=sponsor_id,
        requested_by=principal.subject,
        requested_at=now,
        total_items=len(recipients),
        operation_name=name,
        retry_of=retry_of,
        callback_url=callback_url,
        progress_notifications=progress_notifications,
        link_send=spec.model_copy(update={"recipient_chunks": len(chunks)}),
    )
    snapshot = _queued_snapshot(
        operation_id, sponsor_id, principal, OperationType.LINK_SEND, name, len(recipients), now
    )
    snapshot.retry_of = retry_of
    await _queue(request, snapshot, [header.model_dump_json().encode(), *chunks])
    return snapshot


@router.get(
    "/status/{operationId}",
    response_model=Envelope[OperationStatusOut],
    summary="Live status of one operation",
    responses={404: {"model": ErrorBody, "description": "Unknown, or another sponsor's"}},
)
def get_status(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
) -> Envelope[OperationStatusOut]:
    """From the live view of the status topic: refreshed at least every second while running."""
    snapshot = _visible(request, principal, operationId)
    return Envelope(data=status_out(snapshot, datetime.now(UTC)))


@router.get(
    "/history",
    response_model=HistoryPage,
    summary="The caller's operations, newest first",
)
def get_history(
    request: Request,
    principal: CurrentPrincipal,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=200)] = 50,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    operation_status: Annotated[OperationStatus | None, Query(alias="status")] = None,
) -> HistoryPage:
    """From ClickHouse, optionally filtered by ``status``; a running operation's counts come
    from the live view."""
    store = _store(request)
    scope = principal.sponsor_scope
    wanted = operation_status.value if operation_status else None
    rows = store.history(scope, limit=page_size, offset=(page - 1) * page_size, status=wanted)
    total = store.history_count(scope, wanted)
    view = _view(request)
    return HistoryPage(
        data=[history_entry(row, view.get(row.operation_id)) for row in rows],
        pagination=Pagination(
            page_size=page_size,
            page=page,
            has_more=page * page_size < total,
            total_count=total,
        ),
    )


@router.get(
    "/codes/{operationId}",
    response_model=Envelope[CodesPage],
    summary="The codes an operation generated, in item order",
    responses={404: {"model": ErrorBody, "description": "Unknown, or another sponsor's"}},
)
def get_codes(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
    after_index: Annotated[int, Query(alias="afterIndex", ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Envelope[CodesPage]:
    """Pages of ``limit`` codes starting at item ``afterIndex``, from ClickHouse."""
    snapshot = _visible(request, principal, operationId)
    if snapshot.operation_type is not OperationType.CODE_GENERATION:
        raise ApiError(409, "NOT_A_CODE_OPERATION", "This operation generates no codes")
    store = _store(request)
    rows = store.codes_page(snapshot.sponsor_id, operationId, after_index=after_index, limit=limit)
    counts = store.code_counts(snapshot.sponsor_id, operationId)
    return Envelope(
        data=CodesPage(
            operation_id=operationId,
            codes=[
                GeneratedCode(
                    item_index=index,
                    code=code,
                    subscription_tier_id=tier,
                    batch_name=batch_name,
                    expires_at=expires_at,
                )
                for index, code, tier, batch_name, expires_at in rows
            ],
            next_after_index=rows[-1][0] + 1 if len(rows) == limit else None,
            total_codes=counts.items,
            unique_codes=counts.unique_codes,
        )
    )


@router.post(
    "/cancel/{operationId}",
    response_model=Envelope[CancelResult],
    summary="Cancel a running operation",
    responses={
        404: {"model": ErrorBody, "description": "Unknown, or another sponsor's"},
        409: {"model": ErrorBody, "description": "Already finished or already cancelled"},
        503: {"model": ErrorBody, "description": "Kafka did not take the cancel"},
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
    snapshot = _visible(request, principal, operationId)
    _refuse_finished(snapshot)
    settings = _settings(request)
    command = ControlCommand(
        operation_id=operationId,
        sponsor_id=snapshot.sponsor_id,
        action=ControlAction.CANCEL,
        requested_by=principal.subject,
        requested_at=datetime.now(UTC),
    )
    try:
        await asyncio.wait_for(
            _sink(request).send(
                Topics(settings.topic_prefix).control.name,
                sponsor_key(snapshot.sponsor_id),
                command.model_dump_json().encode(),
            ),
            timeout=settings.produce_timeout_seconds,
        )
    except (ProduceError, TimeoutError) as exc:
        raise ApiError(503, "SYSTEM_ERROR", "Cancel not queued; retry") from exc
    view = _view(request)
    deadline = asyncio.get_running_loop().time() + settings.control_ack_timeout_seconds
    while True:
        current = view.get(operationId) or snapshot
        if current.stop_reason == "CANCELLED" or current.status.is_terminal:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise ApiError(
                504,
                "CANCEL_NOT_CONFIRMED",
                "The cancel is queued but the worker has not confirmed it yet; poll status",
            )
        await asyncio.sleep(0.02)
    if current.status.is_terminal and current.status is not OperationStatus.CANCELLED:
        raise ApiError(
            409, "OPERATION_FINISHED", f"The operation finished first: {current.status.value}"
        )
    log.info("operation %s: cancelled by %s", operationId, principal.subject)
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


class ItemOut(OutModel):
    index: int
    item_id: str
    status: ItemStatus
    result_data: str | None
    error_code: str | None
    error_message: str | None
    error_category: str | None
    is_retryable: bool
    retry_count: int
    processed_at: datetime
    processing_duration: str
    channel: str | None
    cost: float
    attempts: int


class ItemsPage(OutModel):
    operation_id: str
    items: list[ItemOut]
    next_cursor: int | None = Field(description="Pass as cursor to get the next page.")


@router.get(
    "/items/{operationId}",
    response_model=Envelope[ItemsPage],
    summary="Per-item results of an operation, in item order",
    responses={404: {"model": ErrorBody, "description": "Unknown, or another sponsor's"}},
)
def get_items(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
    item_status: Annotated[ItemStatus | None, Query(alias="status")] = None,
    cursor: Annotated[int, Query(ge=0, le=2**32 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Envelope[ItemsPage]:
    """From ClickHouse; filter with ``status`` (e.g. ``Failed``), page with ``cursor``."""
    snapshot = _visible(request, principal, operationId)
    rows = _store(request).items_page(
        snapshot.sponsor_id,
        operationId,
        after_index=cursor,
        limit=limit,
        status=item_status.value if item_status else None,
    )
    items = [
        ItemOut(
            index=row[0],
            item_id=row[1],
            status=ItemStatus(row[2]),
            result_data=row[3],
            error_code=row[4],
            error_message=row[5],
            error_category=row[6],
            is_retryable=bool(row[7]),
            retry_count=row[8],
            processed_at=row[9],
            processing_duration=timespan(timedelta(milliseconds=row[10])) or "00:00:00",
            channel=row[11],
            cost=row[12],
            attempts=row[13],
        )
        for row in rows
    ]
    return Envelope(
        data=ItemsPage(
            operation_id=operationId,
            items=items,
            next_cursor=items[-1].index + 1 if len(items) == limit else None,
        )
    )


@router.get(
    "/aggregates/{operationId}",
    summary="Per-operation aggregates from ClickHouse (once finished)",
    responses={
        404: {"model": ErrorBody, "description": "Unknown, or another sponsor's"},
        409: {"model": ErrorBody, "description": "Not ready: the operation is still running"},
    },
)
def get_aggregates(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
) -> dict[str, Any]:
    """Items by status and by error code, cost, attempts and processing-time percentiles."""
    snapshot = _visible(request, principal, operationId)
    if not snapshot.status.is_terminal:
        raise ApiError(
            409,
            "NOT_READY",
            "Aggregates are computed when the operation finishes",
            {"status": snapshot.status.value, "statusUrl": status_url(operationId)},
        )
    data = _store(request).aggregates(snapshot.sponsor_id, operationId)
    return {
        "success": True,
        "data": {"operationId": operationId, "status": snapshot.status.value, **data},
    }


class RetryResult(OutModel):
    original_operation_id: str
    retry_operation_id: str
    failed_items_count: int
    retryable_items_count: int
    non_retryable_items_count: int


_retry_locks: dict[str, asyncio.Lock] = {}


@router.post(
    "/retry/{operationId}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[RetryResult],
    summary="Re-send only the retryable failed items, as a new linked operation",
    responses={
        404: {"model": ErrorBody, "description": "Unknown, or another sponsor's"},
        409: {"model": ErrorBody, "description": "Still running, or nothing to retry"},
    },
)
async def retry_failed(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
    error_code: Annotated[str | None, Query(alias="errorCode", max_length=64)] = None,
    error_category: Annotated[ErrorCategory | None, Query(alias="errorCategory")] = None,
) -> Envelope[RetryResult]:
    """Items that failed with a retryable error go out again in a new operation; each keeps
    its original item id as the provider idempotency key. Narrow the retry with
    ``errorCode`` or ``errorCategory``. While a retry of this operation runs, calling again
    returns that same retry operation."""
    snapshot = _visible(request, principal, operationId)
    if not snapshot.status.is_terminal:
        raise ApiError(409, "OPERATION_RUNNING", "Retry once the operation has finished")
    lock = _retry_locks.setdefault(operationId, asyncio.Lock())
    async with lock:
        view = _view(request)
        store = _store(request)
        failed = await asyncio.to_thread(
            store.failed_items,
            snapshot.sponsor_id,
            operationId,
            code=error_code,
            category=error_category.value if error_category else None,
        )
        retryable = [index for index, ok in failed if ok]
        counts = {
            "failed_items_count": len(failed),
            "retryable_items_count": len(retryable),
            "non_retryable_items_count": len(failed) - len(retryable),
        }
        running = view.running_retry_of(operationId)
        if running is not None:
            return Envelope(
                message="A retry of this operation is already running",
                data=RetryResult(
                    original_operation_id=operationId,
                    retry_operation_id=running.operation_id,
                    **counts,
                ),
            )
        if not retryable:
            raise ApiError(
                409,
                "NOTHING_TO_RETRY",
                "No retryable failed items" + (" match the filter" if failed else ""),
                {"failedItemsCount": len(failed), "nonRetryableItemsCount": len(failed)},
            )
        original = await asyncio.to_thread(store.request, snapshot.sponsor_id, operationId)
        if original is None or original.link_send is None:
            raise ApiError(409, "NOTHING_TO_RETRY", "Only link sends can be retried")
        rows = await asyncio.to_thread(
            store.recipients, snapshot.sponsor_id, operationId, retryable
        )
        recipients = [
            PreparedRecipient(
                index=i, name=name, address=address, message=message, idempotency_key=key
            )
            for i, (_, name, address, message, key) in enumerate(rows)
        ]
        retry_id = f"retry_{uuid.uuid4().hex}"
        await _queue_link_send(
            request,
            principal,
            sponsor_id=snapshot.sponsor_id,
            operation_id=retry_id,
            name=f"Retry of {original.operation_name}"[:200],
            spec=original.link_send,
            recipients=recipients,
            now=datetime.now(UTC),
            retry_of=operationId,
        )
    log.info("operation %s: retrying %d failed items as %s", operationId, len(recipients), retry_id)
    return Envelope(
        message=f"{len(recipients)} failed items queued again",
        data=RetryResult(original_operation_id=operationId, retry_operation_id=retry_id, **counts),
    )


@router.get("/webhook-secret", summary="The secret your webhooks are signed with")
def webhook_secret(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """Verify ``X-Bulkops-Signature`` as ``sha256=HMAC_SHA256(secret, timestamp + "." + body)``
    with ``timestamp`` from ``X-Bulkops-Timestamp``; refuse stale timestamps (replay)."""
    if principal.sponsor_id is None:
        raise ApiError(403, "FORBIDDEN", "Webhook secrets belong to a sponsor: use a Sponsor token")
    return {
        "success": True,
        "data": {
            "secret": sponsor_secret(_settings(request).webhook_secret, principal.sponsor_id),
            "algorithm": "HMAC-SHA256",
            "signedPayload": "{X-Bulkops-Timestamp}.{raw body}",
            "headers": [
                "X-Bulkops-Signature",
                "X-Bulkops-Timestamp",
                "X-Bulkops-Event",
                "X-Bulkops-Delivery",
            ],
        },
    }
