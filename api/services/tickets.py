"""The ticket API of seed ``003_*`` over job operations: requests turned into jobs of the
ticket system's types, and operations presented in the seed's snake_case shapes.

Each ticket's item id is ``<operationId>:t<ticketId>``: the ticket system's idempotency key,
and how an error or a recent result names its ticket again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request

from api.auth import Principal
from api.deps import view_of
from api.errors import ApiError, not_found
from api.services import jobs
from api.services.presenters import time_remaining
from core.settings import ApiSettings
from schemas.jobs import BulkJobRequest, JobTypeRecord
from schemas.status import OperationSnapshot
from schemas.tickets import (
    TicketBulkAccepted,
    TicketBulkEntry,
    TicketBulkRequest,
    TicketBulkStatus,
    TicketError,
    TicketOperationType,
    TicketStatus,
)

TICKET_PREFIX = "ticket:"


def sponsor_of(principal: Principal) -> int:
    """Ticket operations are a tenant's own: a sponsor's token names the tenant."""
    if principal.sponsor_id is None:
        raise ApiError(403, "FORBIDDEN", "Ticket operations are submitted with a sponsor's token")
    return principal.sponsor_id


def item_id(operation_id: str, ticket_id: int) -> str:
    return f"{operation_id}:t{ticket_id}"


def ticket_of(item: str) -> int | None:
    _, _, tail = item.rpartition(":t")
    return int(tail) if tail.isdigit() else None


def as_job(body: TicketBulkRequest) -> BulkJobRequest:
    return BulkJobRequest(
        operation_type=body.operation_type.job_type,
        operation_name=f"Tickets: {body.operation_type.value}",
        items=[{"ticketId": ticket} for ticket in body.ticket_ids],
        data=body.operation_data,
        metadata=body.metadata,
    )


def check(settings: ApiSettings, record: JobTypeRecord, job: BulkJobRequest) -> None:
    """The job checks, with the fields named as the ticket request names them."""
    try:
        jobs.check_size(settings, len(job.items), record.spec.batch_size)
        jobs.check_items(record, job)
    except ApiError as exc:
        raise _renamed(exc) from None


def _renamed(error: ApiError) -> ApiError:
    details = error.details if isinstance(error.details, dict) else {}
    errors = [{**e, "field": _field(str(e.get("field", "")))} for e in details.get("errors", [])]
    first = errors[0] if errors else {"field": "body", "message": error.message}
    return ApiError(
        error.status_code,
        error.error,
        f"{first['field']}: {first['message']}",
        {**details, "errors": errors},
    )


def _field(field: str) -> str:
    """``items.3.ticketId`` → ``ticket_ids.3``; ``data.status`` → ``operation_data.status``."""
    if field.startswith("items."):
        return "ticket_ids." + field.split(".")[1]
    if field.startswith("data"):
        return "operation_data" + field[len("data") :]
    return field


async def visible_ticket_operation(
    request: Request, principal: Principal, operation_id: str
) -> OperationSnapshot:
    """The caller's ticket operation (live or archived); 404 for any other."""
    snapshot = await view_of(request).find(operation_id)
    if (
        snapshot is None
        or not principal.can_see(snapshot.sponsor_id)
        or not (snapshot.job_type or "").startswith(TICKET_PREFIX)
    ):
        raise not_found(operation_id)
    return snapshot


def operation_type_of(snapshot: OperationSnapshot) -> TicketOperationType:
    return TicketOperationType((snapshot.job_type or "").removeprefix(TICKET_PREFIX))


def accepted(snapshot: OperationSnapshot, now: datetime) -> TicketBulkAccepted:
    remaining = time_remaining(snapshot, now)
    return TicketBulkAccepted(
        operation_id=snapshot.operation_id,
        status=TicketStatus.of(snapshot.status),
        ticket_count=snapshot.total_items,
        created_at=snapshot.created_at,
        estimated_completion=now + remaining if remaining is not None else None,
    )


def status(snapshot: OperationSnapshot, now: datetime) -> TicketBulkStatus:
    total, processed = snapshot.total_items, snapshot.processed_items
    remaining = time_remaining(snapshot, now)
    return TicketBulkStatus(
        operation_id=snapshot.operation_id,
        status=TicketStatus.of(snapshot.status),
        operation_type=operation_type_of(snapshot),
        total_tickets=total,
        processed_tickets=processed,
        successful_tickets=snapshot.successful_items,
        failed_tickets=snapshot.failed_items,
        skipped_tickets=snapshot.skipped_items,
        progress_percentage=round(processed / total * 100, 1) if total else 0.0,
        created_at=snapshot.created_at,
        started_at=snapshot.started_at,
        estimated_completion=(
            snapshot.completed_at
            if snapshot.status.is_terminal
            else (now + remaining if remaining is not None else None)
        ),
        completed_at=snapshot.completed_at,
        cancelled_at=snapshot.cancelled_at,
        errors=[
            TicketError(
                ticket_id=ticket_of(e.item_id),
                error_code=e.error_code,
                error_message=e.error_message,
            )
            for e in snapshot.errors
        ],
    )


def entry(
    operation_id: str,
    status_now: TicketStatus,
    job_type: str,
    total: int,
    successful: int,
    failed: int,
    created_at: datetime,
    completed_at: datetime | None,
) -> TicketBulkEntry:
    return TicketBulkEntry(
        operation_id=operation_id,
        status=status_now,
        operation_type=TicketOperationType(job_type.removeprefix(TICKET_PREFIX)),
        total_tickets=total,
        successful_tickets=successful,
        failed_tickets=failed,
        created_at=created_at,
        completed_at=completed_at,
    )


def progress_update(snapshot: OperationSnapshot, now: datetime) -> dict[str, Any]:
    """The seed's WebSocket ``progress_update``."""
    total = snapshot.total_items
    recent = snapshot.recent_results[-1].item_id if snapshot.recent_results else None
    return {
        "type": "progress_update",
        "operation_id": snapshot.operation_id,
        "status": TicketStatus.of(snapshot.status).value,
        "processed_tickets": snapshot.processed_items,
        "progress_percentage": round(snapshot.processed_items / total * 100, 1) if total else 0.0,
        "current_ticket_id": ticket_of(recent) if recent else None,
        "timestamp": now.isoformat(),
    }


def operation_completed(snapshot: OperationSnapshot) -> dict[str, Any]:
    """The seed's WebSocket ``operation_completed``."""
    return {
        "type": "operation_completed",
        "operation_id": snapshot.operation_id,
        "final_status": TicketStatus.of(snapshot.status).value,
        "successful_tickets": snapshot.successful_items,
        "failed_tickets": snapshot.failed_items,
        "completed_at": snapshot.completed_at.isoformat() if snapshot.completed_at else None,
    }


def is_ticket_operation(snapshot: OperationSnapshot) -> bool:
    return (snapshot.job_type or "").startswith(TICKET_PREFIX)
