"""REST response bodies in the seed's envelope (``success``, ``data`` / ``error``, ``message``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from schemas.common import ErrorCategory, ItemStatus, OperationStatus, OperationType
from schemas.quotas import QuotaLimits, QuotaRefusal, QuotaUse
from schemas.run_rules import Throttle

T = TypeVar("T")


class OutModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )


class ErrorBody(OutModel):
    success: bool = False
    error: str = Field(examples=["VALIDATION_FAILED"])
    message: str
    details: Any = None


class BulkError(OutModel):
    item_index: int
    item_id: str
    error_code: str
    error_message: str
    error_category: ErrorCategory
    is_retryable: bool
    retry_count: int


class Metrics(OutModel):
    total_items: int
    processed_items: int
    successful_items: int
    failed_items: int
    skipped_items: int = 0
    progress_percentage: float
    success_rate: float
    average_processing_time: str | None = None
    estimated_time_remaining: str | None = None
    errors: list[BulkError] = Field(default_factory=list)


class OperationAccepted(OutModel):
    operation_id: str
    operation_type: OperationType
    job_type: str | None = Field(default=None, description="A BulkJob's registered type.")
    status: OperationStatus
    total_items: int
    created_at: datetime
    estimated_completion_time: datetime | None = None
    scheduled_start: datetime | None = None
    status_url: str
    metrics: Metrics
    validation_warnings: list[str] = Field(default_factory=list)


class RecentResultOut(OutModel):
    index: int
    item_id: str
    status: ItemStatus
    result_data: str | None
    processed_at: datetime
    processing_duration: str


class OperationStatusOut(OutModel):
    operation_id: str
    operation_type: OperationType
    job_type: str | None = Field(default=None, description="A BulkJob's registered type.")
    operation_name: str
    status: OperationStatus
    total_items: int
    metrics: Metrics
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_updated: datetime
    current_phase: str
    status_message: str
    recent_results: list[RecentResultOut]
    stop_reason: str | None = None
    quota_refusal: QuotaRefusal | None = Field(
        default=None, description="The quota that refused it (stopReason QUOTA_EXCEEDED)."
    )
    cancelled_at: datetime | None = None
    paused_at: datetime | None = None
    pause_reason: str | None = Field(
        default=None,
        description="Why the operation paused itself (pauseOnErrorRate); absent for a "
        "pause asked for through the API.",
    )
    scheduled_start: datetime | None = Field(
        default=None, description="When a scheduled operation starts sending."
    )
    total_cost: float = 0.0
    retry_of: str | None = None
    throttle: Throttle | None = Field(
        default=None, description="A send's concurrency, own rate and spread now in force."
    )
    webhook_state: str | None = None
    webhook_attempts: list[dict[str, Any]] = Field(default_factory=list)
    aggregates_url: str
    items_url: str
    poll_after_seconds: float = Field(description="A sensible wait before the next poll.")
    next_steps: list[str]
    tips: list[str] = Field(default_factory=list)


class HistorySummary(OutModel):
    channel: str | None = None
    total_cost: float = 0.0
    average_delivery_time: str | None = None
    subscription_tier_id: int | None = None
    code_prefix: str | None = None


class HistoryEntry(OutModel):
    operation_id: str
    operation_name: str
    operation_type: OperationType
    status: OperationStatus
    total_items: int
    successful_items: int
    failed_items: int
    skipped_items: int
    created_at: datetime
    completed_at: datetime | None
    duration: str | None
    created_by: str
    summary: HistorySummary


class Pagination(OutModel):
    page_size: int
    page: int
    has_more: bool
    total_count: int


class GeneratedCode(OutModel):
    item_index: int
    code: str
    subscription_tier_id: int
    batch_name: str | None
    expires_at: datetime


class Envelope(OutModel, Generic[T]):
    """The seed's success envelope: ``{success: true, message, data}``."""

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


class CancelResult(OutModel):
    operation_id: str
    final_status: OperationStatus
    processed_items: int
    remaining_items: int
    cancellation_time: datetime


class PauseResult(OutModel):
    operation_id: str
    status: OperationStatus
    processed_items: int
    remaining_items: int
    changed_at: datetime = Field(description="When the worker paused or resumed it.")


class RetryResult(OutModel):
    original_operation_id: str
    retry_operation_id: str
    failed_items_count: int
    retryable_items_count: int
    non_retryable_items_count: int


class BulkInvitationJob(OutModel):
    """``BulkInvitationJobDto`` of the seed."""

    job_id: str
    total_dealers: int
    status: str
    created_date: datetime
    status_check_url: str
    operation_status_url: str


class DealerError(OutModel):
    row_number: int
    email: str
    error: str
    timestamp: datetime | None


class ErrorSummary(OutModel):
    errors: list[DealerError]


class BulkInvitationStatus(OutModel):
    job_id: str
    status: str
    invitation_type: str | None = None
    total_dealers: int
    processed_dealers: int
    successful_invitations: int
    failed_invitations: int
    progress_percentage: float
    created_date: datetime
    started_date: datetime | None
    completed_date: datetime | None
    error_summary: ErrorSummary
    report_url: str
    operation_status_url: str


class BulkInvitationHistory(OutModel):
    jobs: list[BulkInvitationStatus]
    total_count: int


class TierInventory(OutModel):
    tier: str | None
    subscription_tier_id: int
    available: int
    reserved: int
    transferred: int
    expired: int


class QuotaOverview(OutModel):
    """A sponsor's quotas (or, without ``sponsorId``, the defaults): limits and use."""

    sponsor_id: int | None = None
    bulk_operation_limits: QuotaLimits = Field(
        description="The limits in force (null: unlimited), as the seed names them."
    )
    overrides: dict[str, int | None] = Field(
        default_factory=dict,
        description="The limits an Admin set for this sponsor (or for every sponsor).",
    )
    use: QuotaUse | None = Field(default=None, description="Use now; daily counts of today.")
    day_resets_at: datetime = Field(description="When the daily counts start again (UTC).")
    admins_exempt: bool = Field(
        description="Whether operations an Admin submits are counted but never refused."
    )


class QuotaChange(OutModel):
    """An Admin's change of limits: for one sponsor, or with no ``sponsorId`` the defaults."""

    model_config = ConfigDict(extra="forbid")

    bulk_operation_limits: QuotaLimits = Field(
        description="Only the limits given change; null makes one unlimited, and a limit "
        "left out keeps (or goes back to) the default."
    )


class QuotaEstimate(OutModel):
    """What a submit would take of the sponsor's quotas, as far as this API has seen (the
    worker decides on the real submit)."""

    limits: QuotaLimits
    use: QuotaUse = Field(description="Use now.")
    would_use: QuotaUse = Field(description="Use once this operation is accepted.")
    refusal: QuotaRefusal | None = Field(
        default=None, description="The quota the submit would break now, if any."
    )
    exempt: bool = Field(description="Submitted by an Admin: counted, never refused.")


class DryRunResult(OutModel):
    """What a submit would do: validated, priced and planned, nothing queued or stored."""

    dry_run: bool = True
    operation_type: OperationType
    total_items: int
    valid_items: int = Field(description="Items that would run (the others end Skipped).")
    batches: int
    estimated_cost: float = Field(description="Valid items × the channel's price (0 for codes).")
    validation_warnings: list[str] = Field(default_factory=list)
    quota: QuotaEstimate
    planned_start: datetime
    releases_end_at: datetime | None = Field(
        default=None, description="When the last batch would go out (spread sends)."
    )
    estimated_completion_time: datetime | None = None


class PartitionLagOut(OutModel):
    topic: str
    partition: int
    lag: int = Field(description="Messages the worker group has not consumed yet.")


class ConsumerLagOut(OutModel):
    group: str
    probe_ok: bool = Field(description="False when no broker answered the probe.")
    total_lag: int
    partitions: list[PartitionLagOut]


class DeadLettersOut(OutModel):
    topic: str
    retained: int | None = Field(
        description="Messages on the dead-letter topic within its retention (None: the broker "
        "did not answer)."
    )


class StatusCount(OutModel):
    operation_type: str
    status: str
    count: int


class SponsorActivity(OutModel):
    sponsor_id: int
    running: int = Field(description="Operations not finished (queued, running, paused).")
    live: int = Field(description="Operations in the live view (running and recently ended).")


class AdminOverview(OutModel):
    """What an operator looks at first: is the worker keeping up, is anything dead-lettered,
    who is running what."""

    consumer_lag: ConsumerLagOut
    dead_letters: DeadLettersOut
    operations: list[StatusCount]
    sponsors: list[SponsorActivity]
    as_of: datetime
