"""The ticket bulk-operations API of seed ``003_*``, in its own snake_case shapes.

A ticket operation is a job operation (:mod:`schemas.jobs`) of the type
``ticket:<operation_type>``, which the ticket system registers and executes: Bulkops never
touches its tickets. These are the seed's request and answers; statuses are the seed's
(``pending``, ``in_progress``, ``completed``, ``failed``, ``cancelled``).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.common import OperationStatus
from schemas.requests import BoundedMetadata

#: Tickets in one operation (the body stays far under the API's jobs body limit).
MAX_TICKETS = 100_000


class TicketOperationType(StrEnum):
    UPDATE_STATUS = "update_status"
    ADD_COMMENT = "add_comment"
    ASSIGN = "assign"
    UPDATE_PRIORITY = "update_priority"
    UPDATE_CATEGORY = "update_category"
    DELETE = "delete"

    @property
    def job_type(self) -> str:
        return f"ticket:{self.value}"


class TicketStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def of(cls, status: OperationStatus) -> TicketStatus:
        """The seed's status for an operation's: a paused operation is still in progress,
        and one with some tickets refused has completed (its errors say which)."""
        return _STATUSES[status]

    def operation_statuses(self) -> list[str]:
        return [s.value for s, t in _STATUSES.items() if t is self]


_STATUSES = {
    OperationStatus.QUEUED: TicketStatus.PENDING,
    OperationStatus.VALIDATING: TicketStatus.PENDING,
    OperationStatus.PROCESSING: TicketStatus.IN_PROGRESS,
    OperationStatus.PAUSED: TicketStatus.IN_PROGRESS,
    OperationStatus.COMPLETED: TicketStatus.COMPLETED,
    OperationStatus.PARTIALLY_COMPLETED: TicketStatus.COMPLETED,
    OperationStatus.FAILED: TicketStatus.FAILED,
    OperationStatus.CANCELLED: TicketStatus.CANCELLED,
}


class SeedModel(BaseModel):
    """The seed's snake_case; unknown request fields refused."""

    model_config = ConfigDict(extra="forbid")


class TicketBulkRequest(SeedModel):
    ticket_ids: list[int] = Field(min_length=1, max_length=MAX_TICKETS, examples=[[1, 2, 3]])
    operation_type: TicketOperationType
    operation_data: BoundedMetadata = Field(
        default_factory=dict,
        description="What the action needs: `status`, `comment`, `assignee_id`, `priority` "
        "or `category`; checked against the ticket system's schema for the action.",
    )
    metadata: BoundedMetadata = Field(default_factory=dict)

    @field_validator("ticket_ids")
    @classmethod
    def _distinct_positive(cls, ids: list[int]) -> list[int]:
        if any(i < 1 for i in ids):
            raise ValueError("ticket ids are positive")
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if repeated:
            shown = ", ".join(str(i) for i in repeated[:20])
            raise ValueError(f"duplicate ticket ids: {shown}{'…' if len(repeated) > 20 else ''}")
        return ids


SEED_TICKET_EXAMPLE: dict[str, Any] = {
    "ticket_ids": [1, 2, 3, 4, 5],
    "operation_type": "update_status",
    "operation_data": {"status": "resolved"},
    "metadata": {"description": "Marking resolved tickets as closed"},
}


class TicketBulkAccepted(SeedModel):
    operation_id: str
    status: TicketStatus
    ticket_count: int
    created_at: datetime
    estimated_completion: datetime | None = None


class TicketError(SeedModel):
    ticket_id: int | None
    error_code: str
    error_message: str


class TicketBulkStatus(SeedModel):
    operation_id: str
    status: TicketStatus
    operation_type: TicketOperationType
    total_tickets: int
    processed_tickets: int
    successful_tickets: int
    failed_tickets: int
    skipped_tickets: int = Field(description="Not done: the operation was cancelled first.")
    progress_percentage: float
    created_at: datetime
    started_at: datetime | None = None
    estimated_completion: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    errors: list[TicketError] = Field(
        default_factory=list, description="The first errors (the items endpoint has all)."
    )


class TicketBulkCancelled(SeedModel):
    operation_id: str
    status: TicketStatus
    processed_tickets: int
    cancelled_at: datetime


class TicketBulkEntry(SeedModel):
    operation_id: str
    status: TicketStatus
    operation_type: TicketOperationType
    total_tickets: int
    successful_tickets: int
    failed_tickets: int
    created_at: datetime
    completed_at: datetime | None = None


class TicketBulkList(SeedModel):
    operations: list[TicketBulkEntry]
    total: int
    has_more: bool
