"""The ticket bulk-operations API of seed ``003_*`` (its paths, snake_case shapes and
statuses), over job operations executed by the ticket system (:mod:`api.services.tickets`).

Answers are the seed's bare JSON; errors keep the one envelope of the whole API.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import JSONResponse

from api.auth import CurrentPrincipal
from api.deps import OperationId, settings_of, store_of, view_of
from api.routes.lifecycle import cancel_operation
from api.services import idempotency, jobs, tickets
from api.services.idempotency import IdempotencyKey
from api.services.submission import (
    QUOTA_EXCEEDED,
    UNAVAILABLE,
    already_submitted,
    operation_id_for,
)
from schemas.common import OperationStatus
from schemas.responses import ErrorBody
from schemas.tickets import (
    SEED_TICKET_EXAMPLE,
    TicketBulkAccepted,
    TicketBulkCancelled,
    TicketBulkList,
    TicketBulkRequest,
    TicketBulkStatus,
    TicketStatus,
)

log = logging.getLogger("bulkops.api")

router = APIRouter(prefix="/api/v1/tickets/bulk-operations", tags=["tickets"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such ticket operation of yours"}
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TicketBulkAccepted,
    summary="Run one action on many tickets (seed 003)",
    responses={
        403: {"model": ErrorBody, "description": "Not a sponsor's token"},
        404: {"model": ErrorBody, "description": "The ticket system has not registered the action"},
        422: {
            "model": ErrorBody,
            "description": "Duplicate or bad ticket ids, or `operation_data` the action refuses "
            "(`details.errors[].field`: `ticket_ids.<n>`, `operation_data.<field>`)",
        },
        429: QUOTA_EXCEEDED,
        503: UNAVAILABLE,
    },
)
async def create_ticket_operation(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    *,
    body: Annotated[
        TicketBulkRequest,
        Body(
            openapi_examples={
                "seed": {"summary": "The seed's example", "value": SEED_TICKET_EXAMPLE}
            }
        ),
    ],
) -> TicketBulkAccepted | JSONResponse:
    """Each ticket is changed by the ticket system, which decides whether the caller may touch
    it: its refusals are per-ticket errors ("Insufficient permissions…"), not a failed
    operation. Follow it at ``GET …/{operation_id}`` or ``WS /ws/bulk-operations/{id}``."""
    sponsor_id = tickets.sponsor_of(principal)
    job = tickets.as_job(body)
    record = jobs.usable_type(request, principal, sponsor_id, job.operation_type)
    await asyncio.to_thread(tickets.check, settings_of(request), record, job)
    run = jobs.job_run(record, job)
    keyed = idempotency.claim(sponsor_id, "tickets", idempotency_key, body)
    operation_id = operation_id_for("tickets", sponsor_id, idempotency_key)

    async def submit() -> TicketBulkAccepted:
        known = idempotency.replayable(
            keyed, await already_submitted(request, keyed, operation_id, sponsor_id)
        )
        if known is not None:
            response.headers[idempotency.REPLAYED_HEADER] = "true"
            return tickets.accepted(known, datetime.now(UTC))
        now = datetime.now(UTC)
        snapshot = await jobs.queue_job(
            request,
            principal,
            sponsor_id=sponsor_id,
            operation_id=operation_id,
            body=job,
            run=run,
            now=now,
            callback_url=None,
            request_hash=keyed.request_hash if keyed else None,
            item_ids=[tickets.item_id(operation_id, t) for t in body.ticket_ids],
        )
        log.info(
            "operation %s: %s of %d tickets queued for sponsor %d by %s",
            operation_id,
            body.operation_type.value,
            len(body.ticket_ids),
            sponsor_id,
            principal.subject,
        )
        return tickets.accepted(snapshot, now)

    return await idempotency.once(
        request, keyed, status.HTTP_202_ACCEPTED, submit, operation_id=operation_id
    )


@router.get(
    "/{operation_id}",
    response_model=TicketBulkStatus,
    summary="A ticket operation's progress and errors",
    responses=_NOT_FOUND,
)
async def get_ticket_operation(
    request: Request, principal: CurrentPrincipal, operation_id: OperationId
) -> TicketBulkStatus:
    snapshot = await tickets.visible_ticket_operation(request, principal, operation_id)
    return tickets.status(snapshot, datetime.now(UTC))


@router.post(
    "/{operation_id}/cancel",
    response_model=TicketBulkCancelled,
    summary="Cancel a ticket operation: no ticket is changed after this answers",
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorBody, "description": "It finished first (OPERATION_FINISHED)"},
    },
)
async def cancel_ticket_operation(
    request: Request, principal: CurrentPrincipal, operation_id: OperationId
) -> TicketBulkCancelled:
    """Tickets handed to the ticket system before the answer may still change (they settle);
    the others end skipped, and the ticket system's workers drop what they have not started."""
    await tickets.visible_ticket_operation(request, principal, operation_id)
    current = await cancel_operation(request, principal, operation_id)
    return TicketBulkCancelled(
        operation_id=operation_id,
        status=TicketStatus.CANCELLED,
        processed_tickets=current.processed_items,
        cancelled_at=current.cancelled_at or datetime.now(UTC),
    )


@router.get("", response_model=TicketBulkList, summary="Your ticket operations, newest first")
async def list_ticket_operations(
    request: Request,
    principal: CurrentPrincipal,
    status_filter: Annotated[TicketStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TicketBulkList:
    """From ClickHouse, with the live status of running operations."""
    sponsor_id = tickets.sponsor_of(principal)
    statuses = status_filter.operation_statuses() if status_filter else []
    page, total = await asyncio.to_thread(
        store_of(request).reader.job_operations,
        sponsor_id,
        prefix=tickets.TICKET_PREFIX,
        statuses=statuses,
        limit=limit,
        offset=offset,
    )
    view = view_of(request)
    entries = []
    for row in page:
        current = view.get(row.operation_id)  # running ones: newer than their stored row
        entries.append(
            tickets.entry(
                row.operation_id,
                TicketStatus.of(current.status if current else OperationStatus(row.status)),
                row.job_type,
                row.total_items,
                current.successful_items if current else row.successful_items,
                current.failed_items if current else row.failed_items,
                row.created_at,
                current.completed_at if current else row.completed_at,
            )
        )
    return TicketBulkList(operations=entries, total=total, has_more=offset + len(page) < total)
