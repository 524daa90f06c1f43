"""The operation-status snapshot: what the worker publishes about each operation on the
compacted status topic (key = operation id), and what the API's live view serves from."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from schemas import SCHEMA_VERSION
from schemas.common import Channel, ItemError, OperationStatus, OperationType, WireModel
from schemas.job_wire import JobProgress
from schemas.messages import RecentResult, WebhookAttempt
from schemas.quotas import QuotaRefusal
from schemas.run_rules import Throttle


class OperationSnapshot(WireModel):
    """State of one operation, published to the compacted status topic (key = operation id)."""

    schema_version: int = SCHEMA_VERSION
    operation_id: str
    sponsor_id: int
    operation_type: OperationType
    job_type: str | None = Field(
        default=None, description="A BulkJob's registered type (`ticket:update_status`)."
    )
    operation_name: str
    requested_by: str
    status: OperationStatus
    priority: int = Field(default=5, ge=1, le=10, description="1 (low) to 10 (high).")
    job_progress: JobProgress | None = Field(
        default=None, description="A BulkJob's batches with the owning system, its retry limit."
    )
    total_items: int
    processed_items: int = 0
    successful_items: int = 0
    failed_items: int = 0
    skipped_items: int = 0
    batches_total: int = 0
    batches_done: int = 0
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_updated: datetime
    current_phase: str
    status_message: str
    processing_ms_total: float = 0.0
    channel: Channel | None = None
    total_cost: float = 0.0
    stop_reason: str | None = Field(
        default=None,
        description="Why the operation stopped early: CANCELLED, STOP_ON_FIRST_ERROR, "
        "BUDGET_EXCEEDED, SUBMISSION_INCOMPLETE or QUOTA_EXCEEDED.",
    )
    quota_refusal: QuotaRefusal | None = Field(
        default=None, description="Which quota refused the operation (stopReason QUOTA_EXCEEDED)."
    )
    request_hash: str | None = Field(
        default=None, max_length=64, description="sha256 of the submitted body."
    )
    cancelled_at: datetime | None = None
    paused_at: datetime | None = None
    pause_reason: str | None = Field(
        default=None, description="Why the operation paused itself (absent for a user's pause)."
    )
    scheduled_start: datetime | None = Field(
        default=None, description="When a scheduled operation starts (first open window)."
    )
    releases_end_at: datetime | None = Field(
        default=None, description="When the last batch is planned to go out (spread sends)."
    )
    retry_of: str | None = None
    throttle: Throttle | None = Field(
        default=None, description="A send's concurrency, own rate and spread, as now in force."
    )
    webhook_state: str | None = Field(default=None, description="pending, delivered or failed")
    webhook_attempts: list[WebhookAttempt] = Field(default_factory=list)
    errors: list[ItemError] = Field(default_factory=list)
    recent_results: list[RecentResult] = Field(default_factory=list)
    version: int = Field(
        default=0, ge=0, description="Grows with every change; readers keep the highest."
    )
