"""Reading operations back: status, history, codes, items, aggregates, webhook secret."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.auth import CurrentPrincipal
from api.deps import (
    NOT_FOUND,
    OperationId,
    settings_of,
    store_of,
    view_of,
    visible,
)
from api.errors import ApiError, not_found
from api.services import exports
from api.services.presenters import API_PREFIX, history_entry, status_out, status_url, timespan
from core.webhooks import operators_secret, sponsor_secret
from schemas.analytics import ExportFormat
from schemas.common import ItemStatus, OperationStatus, OperationType
from schemas.responses import (
    CodesPage,
    Envelope,
    ErrorBody,
    GeneratedCode,
    HistoryPage,
    ItemOut,
    ItemsPage,
    OperationStatusOut,
    Pagination,
)

log = logging.getLogger("bulkops.api")

router = APIRouter(prefix=API_PREFIX, tags=["bulk-operations"])


@router.get(
    "/status/{operationId}",
    response_model=Envelope[OperationStatusOut],
    summary="Live status of one operation",
    responses=NOT_FOUND,
)
async def get_status(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
) -> Response:
    """From the live view of the status topic: refreshed at least every second while running;
    an operation finished long ago from its archived last snapshot.

    The hottest route (clients poll it): served on the event loop from memory, and the
    envelope serialised once, without FastAPI validating it again against the response model.
    """
    view = view_of(request)
    snapshot = await view.find(operationId)
    if snapshot is None or not principal.can_see(snapshot.sponsor_id):
        raise not_found(operationId)
    envelope = Envelope(data=status_out(snapshot, datetime.now(UTC)))
    return Response(envelope.model_dump_json(by_alias=True), media_type="application/json")


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
    operation_type: Annotated[OperationType | None, Query(alias="operationType")] = None,
    search: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Part of the operation name, any case."),
    ] = None,
) -> HistoryPage:
    """From ClickHouse, optionally filtered by ``status``, ``operationType`` and a part of
    the name; a running operation's counts come from the live view."""
    store = store_of(request)
    scope = principal.sponsor_scope
    wanted = operation_status.value if operation_status else None
    kind = operation_type.value if operation_type else None
    rows = store.reader.history(
        scope,
        limit=page_size,
        offset=(page - 1) * page_size,
        status=wanted,
        operation_type=kind,
        search=search,
    )
    total = store.reader.history_count(scope, wanted, kind, search)
    view = view_of(request)
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
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "Not a code-generation operation"},
    },
)
def get_codes(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
    after_index: Annotated[int, Query(alias="afterIndex", ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Envelope[CodesPage]:
    """Pages of ``limit`` codes starting at item ``afterIndex``, from ClickHouse."""
    snapshot = visible(request, principal, operationId)
    if snapshot.operation_type is not OperationType.CODE_GENERATION:
        raise ApiError(409, "NOT_A_CODE_OPERATION", "This operation generates no codes")
    store = store_of(request)
    rows = store.reader.codes_page(
        snapshot.sponsor_id, operationId, after_index=after_index, limit=limit
    )
    counts = store.reader.code_counts(snapshot.sponsor_id, operationId)
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


@router.get(
    "/items/{operationId}",
    response_model=Envelope[ItemsPage],
    summary="Per-item results of an operation, in item order",
    responses=NOT_FOUND,
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
    snapshot = visible(request, principal, operationId)
    rows = store_of(request).reader.items_page(
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
    "/items/{operationId}/export",
    summary="Every item of an operation as a CSV, Excel or Parquet file",
    response_class=StreamingResponse,
    responses={
        **NOT_FOUND,
        422: {"model": ErrorBody, "description": "EXPORT_TOO_LARGE: Excel for a huge operation"},
        200: {
            "content": {media: {} for media in exports.MEDIA_TYPES.values()},
            "description": "The file, streamed",
        },
    },
)
def export_items(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
    export_format: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.CSV,
) -> StreamingResponse:
    """The items endpoint's columns, in item order, in constant memory whatever the size.
    CSV and Parquet stream as they are read; Excel is built whole first and holds up to
    ``BULKOPS_EXPORT_XLSX_MAX_ITEMS`` (100,000) items. Text that a spreadsheet would run as a
    formula is quoted with a leading apostrophe in CSV and Excel."""
    snapshot = visible(request, principal, operationId)
    xlsx_limit = settings_of(request).export_xlsx_max_items
    if export_format is ExportFormat.XLSX and snapshot.total_items > xlsx_limit:
        raise ApiError(
            422,
            "EXPORT_TOO_LARGE",
            f"Excel exports hold up to {xlsx_limit} items: export this operation as csv or parquet",
            {
                "errors": [{"field": "format", "message": "too many items for Excel"}],
                "totalItems": snapshot.total_items,
                "limit": xlsx_limit,
            },
        )
    pages = store_of(request).reader.all_items(snapshot.sponsor_id, operationId)
    log.info("operation %s: items exported as %s", operationId, export_format.value)
    return StreamingResponse(
        exports.encode(pages, export_format),
        media_type=exports.MEDIA_TYPES[export_format],
        headers={
            "Content-Disposition": (
                f'attachment; filename="{operationId}-items.{export_format.value}"'
            )
        },
    )


@router.get(
    "/aggregates/{operationId}",
    summary="Per-operation aggregates from ClickHouse (once finished)",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "Not ready: the operation is still running"},
    },
)
def get_aggregates(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
) -> dict[str, Any]:
    """Items by status and by error code, cost, attempts and processing-time percentiles."""
    snapshot = visible(request, principal, operationId)
    if not snapshot.status.is_terminal:
        raise ApiError(
            409,
            "NOT_READY",
            "Aggregates are computed when the operation finishes",
            {"status": snapshot.status.value, "statusUrl": status_url(operationId)},
        )
    data = store_of(request).reader.aggregates(snapshot.sponsor_id, operationId)
    return {
        "success": True,
        "data": {"operationId": operationId, "status": snapshot.status.value, **data},
    }


@router.get("/webhook-secret", summary="The secret your webhooks are signed with")
def webhook_secret(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """Verify ``X-Bulkops-Signature`` as ``sha256=HMAC_SHA256(secret, timestamp + "." + body)``
    with ``timestamp`` from ``X-Bulkops-Timestamp``; refuse stale timestamps (replay).

    A Sponsor gets the secret of its operations' webhooks; an Admin the secret of the
    operators' ``operation_alert`` webhooks (``BULKOPS_ALERT_WEBHOOK_URL``)."""
    master = settings_of(request).webhook_secret
    if principal.sponsor_id is not None:
        secret, used_for = sponsor_secret(master, principal.sponsor_id), "operation webhooks"
    elif principal.is_admin:
        secret, used_for = operators_secret(master), "operation_alert webhooks"
    else:
        raise ApiError(403, "FORBIDDEN", "Webhook secrets belong to a sponsor or the operators")
    return {
        "success": True,
        "data": {
            "secret": secret,
            "usedFor": used_for,
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
