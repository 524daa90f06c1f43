"""The seed's endpoints under ``/api/v1/bulk-operations``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Body, Path, Query, Request, status
from pydantic import Field

from analytics.store import AnalyticsStore
from api.auth import CurrentPrincipal, Principal
from api.errors import ApiError, not_found, validation_error
from api.presenters import API_PREFIX, history_entry, metrics, status_out, status_url
from api.producer import MessageSink, ProduceError
from api.status_view import StatusView
from bulkops.settings import ApiSettings
from schemas.common import OperationStatus, OperationType
from schemas.messages import OPERATION_ID_PATTERN, OperationRequested, OperationSnapshot
from schemas.requests import SEED_CODE_GENERATION_EXAMPLE, BulkCodeGenerationRequest
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

log = logging.getLogger("bulkops.api")

T = TypeVar("T")

# Used for the submit-time estimate only; status then reports the rate actually observed.
ASSUMED_CODES_PER_SECOND = 20_000


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
    return request.app.state.settings  # type: ignore[no-any-return]


def _view(request: Request) -> StatusView:
    return request.app.state.status_view  # type: ignore[no-any-return]


def _store(request: Request) -> AnalyticsStore:
    return request.app.state.store  # type: ignore[no-any-return]


def _sink(request: Request) -> MessageSink:
    return request.app.state.message_sink  # type: ignore[no-any-return]


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
    now = datetime.now(UTC)
    operation_id = f"codegen_{uuid.uuid4().hex}"
    message = OperationRequested(
        operation_id=operation_id,
        operation_type=OperationType.CODE_GENERATION,
        sponsor_id=sponsor_id,
        requested_by=principal.subject,
        requested_at=now,
        total_items=body.quantity,
        code_generation=body.model_copy(update={"sponsor_id": sponsor_id}),
    )
    snapshot = OperationSnapshot(
        operation_id=operation_id,
        sponsor_id=sponsor_id,
        operation_type=OperationType.CODE_GENERATION,
        operation_name=body.operation_name,
        requested_by=principal.subject,
        status=OperationStatus.QUEUED,
        total_items=body.quantity,
        created_at=now,
        last_updated=now,
        current_phase="Queued",
        status_message="Waiting for a worker",
        version=0,
    )
    topics = Topics(settings.topic_prefix)
    sink = _sink(request)
    try:
        await asyncio.wait_for(
            sink.send(
                topics.operations.name, sponsor_key(sponsor_id), message.model_dump_json().encode()
            ),
            timeout=settings.produce_timeout_seconds,
        )
    except (ProduceError, TimeoutError) as exc:
        log.error("operation %s: not queued: %s", operation_id, exc)
        raise ApiError(
            503, "SYSTEM_ERROR", "Queue service unavailable; nothing was created, retry later"
        ) from exc
    _view(request).apply(snapshot)
    try:
        await sink.send(
            topics.status.name, operation_id.encode(), snapshot.model_dump_json().encode()
        )
    except ProduceError as exc:  # the worker publishes its own snapshot soon after
        log.warning("operation %s: queued snapshot not published: %s", operation_id, exc)
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
) -> HistoryPage:
    """From ClickHouse; a running operation's counts come from the live view."""
    store = _store(request)
    scope = principal.sponsor_scope
    rows = store.history(scope, limit=page_size, offset=(page - 1) * page_size)
    total = store.history_count(scope)
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
