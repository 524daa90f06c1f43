"""Kafka message contracts.

Every message of the flow is keyed by the sponsor id (as its decimal string); the
operation-status snapshots, keyed by operation id on a compacted topic, are in
:mod:`schemas.status`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import Discriminator, Field, Tag, TypeAdapter, model_validator

from schemas import SCHEMA_VERSION
from schemas.common import (
    Channel,
    ItemError,
    ItemStatus,
    OperationType,
    WireModel,
)
from schemas.job_wire import JobItem, JobRun
from schemas.link_wire import DealerRow, LinkSendSpec, PreparedRecipient
from schemas.quotas import QuotaUpdate
from schemas.requests import BulkCodeGenerationRequest
from schemas.run_rules import AutoPauseRule, ReleaseSchedule, Throttle

OPERATION_ID_PATTERN = r"^[a-z]{1,31}_[0-9a-f]{32}$"


class OperationRequested(WireModel):
    """One submitted operation, as the API (or another system) produces it to the topic."""

    kind: Literal["request"] = "request"
    schema_version: int = SCHEMA_VERSION
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN, examples=["codegen_0f1e..."])
    operation_type: OperationType
    sponsor_id: int = Field(ge=1, le=2**63 - 1)
    requested_by: str = Field(min_length=1, max_length=200)
    requested_at: datetime
    total_items: int = Field(gt=0)
    operation_name: str = Field(default="", max_length=200)
    retry_of: str | None = Field(default=None, pattern=OPERATION_ID_PATTERN)
    callback_url: str | None = Field(default=None, max_length=2000)
    progress_notifications: bool = False
    code_generation: BulkCodeGenerationRequest | None = None
    link_send: LinkSendSpec | None = None
    job: JobRun | None = Field(
        default=None, description="A job operation's type as submitted, and its data."
    )
    priority: int = Field(default=5, ge=1, le=10, description="1 (low) to 10 (high).")
    schedule: ReleaseSchedule | None = None
    submission_id: str | None = Field(
        default=None,
        max_length=64,
        description="One per submit attempt; messages of another attempt at the same "
        "operation id are ignored, so a retried submit never runs an operation twice.",
    )
    auto_pause: AutoPauseRule | None = Field(
        default=None, description="Pause by itself on a high failure rate (see AutoPauseRule)."
    )
    quota_exempt: bool = Field(
        default=False,
        description="Submitted by an Admin: counted against the sponsor's quotas, not refused.",
    )
    request_hash: str | None = Field(
        default=None,
        max_length=64,
        description="sha256 of the submitted body: a reused Idempotency-Key with another "
        "body is refused.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="The caller's metadata (campaignId, costCenter, …), kept for analysts.",
    )

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Self:
        if self.operation_type is OperationType.CODE_GENERATION:
            if self.code_generation is None:
                raise ValueError("codeGeneration is required for BulkCodeGeneration")
            if self.code_generation.quantity != self.total_items:
                raise ValueError("totalItems must equal codeGeneration.quantity")
            self.operation_name = self.code_generation.operation_name
        elif self.operation_type is OperationType.JOB:
            if self.job is None:
                raise ValueError("job is required for BulkJob")
        elif self.link_send is None:
            raise ValueError(f"linkSend is required for {self.operation_type.value}")
        return self

    @property
    def batch_size(self) -> int:
        if self.code_generation is not None:
            return self.code_generation.processing.batch_size
        if self.job is not None:
            return self.job.batch_size
        assert self.link_send is not None
        return self.link_send.batch_size


class RecipientChunk(WireModel):
    """A slice of a link send's recipients; chunks keep every message under 1 MB."""

    kind: Literal["recipients"] = "recipients"
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN)
    sponsor_id: int = Field(ge=1, le=2**63 - 1)
    chunk_index: int = Field(ge=0)
    start_index: int = Field(ge=0)
    recipients: list[PreparedRecipient] = Field(min_length=1)
    submission_id: str | None = Field(
        default=None,
        max_length=64,
        description="One per submit attempt; messages of another attempt at the same "
        "operation id are ignored, so a retried submit never runs an operation twice.",
    )


class JobItemsChunk(WireModel):
    """A slice of a job operation's items (whole batches); chunks keep messages under 1 MB."""

    kind: Literal["job_items"] = "job_items"
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN)
    sponsor_id: int = Field(ge=1, le=2**63 - 1)
    chunk_index: int = Field(ge=0)
    start_index: int = Field(ge=0)
    items: list[JobItem] = Field(min_length=1)
    submission_id: str | None = Field(default=None, max_length=64)


#: The messages an operation's items come in, when they do not come with its request.
ItemsChunk = RecipientChunk | JobItemsChunk


class OperationAbort(WireModel):
    """Sent by the API when it could not put a whole submission on Kafka: stop what arrived."""

    kind: Literal["abort"] = "abort"
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN)
    sponsor_id: int = Field(ge=1, le=2**63 - 1)
    reason: str = Field(max_length=1000)
    submission_id: str | None = Field(
        default=None,
        max_length=64,
        description="One per submit attempt; messages of another attempt at the same "
        "operation id are ignored, so a retried submit never runs an operation twice.",
    )


def _kind(default: str) -> Callable[[Any], str]:
    """A message's ``kind``; messages from older producers have none and get ``default``."""

    def kind(value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get("kind", default))
        return str(getattr(value, "kind", default))

    return kind


class CodeBatchSpec(WireModel):
    """What a code-generation item batch needs: the codes of items ``[start, start+count)``."""

    prefix: str
    tier_id: int
    validity_days: int
    batch_name: str | None = None
    serial_base: int = Field(ge=0, description="First serial of the operation's reserved range.")


class ItemBatch(WireModel):
    """A batch of items of one operation (the request's ``batchSize``), exploded by the worker."""

    operation_id: str
    sponsor_id: int
    operation_type: OperationType
    batch_index: int = Field(ge=0)
    start_index: int = Field(ge=0)
    count: int = Field(gt=0)
    code: CodeBatchSpec | None = None
    link: LinkSendSpec | None = None
    recipients: list[PreparedRecipient] | None = None
    job: JobRun | None = None
    job_items: list[JobItem] | None = None


class ReleaseTick(WireModel):
    """Sent by the worker to itself: "batches of this operation may be due; release them".

    Releases go through the operations topic so that they are serialised with the explosion
    and holding of the same sponsor's batches (one actor per partition).
    """

    kind: Literal["release"] = "release"
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN)
    sponsor_id: int = Field(ge=1, le=2**63 - 1)


class OperationEvict(WireModel):
    """Sent by the worker to itself: "this finished operation (or this early control) has
    been kept long enough; archive it and let it go".

    Tables are written from stream events only, so the eviction timer asks the explode agent,
    which owns the sponsor's partition, to do it. The agent archives the last snapshot with
    the next write-behind flush and, once it is stored, sends itself this message again with
    ``archived_version``: then it lets the operation go.
    """

    kind: Literal["evict"] = "evict"
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN)
    sponsor_id: int = Field(ge=1, le=2**63 - 1)
    archived_version: int | None = Field(
        default=None,
        ge=0,
        description="Set on the second message: the snapshot of this version is stored, "
        "so the operation may go if it has not changed since.",
    )


class Redrive(WireModel):
    """Sent by the worker's stall watchdog: batches released long ago and never counted.

    The explode agent answers each from what ClickHouse already holds (its stored item
    outcomes are counted again) or sends the item batch to the items topic once more.
    """

    kind: Literal["redrive"] = "redrive"
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN)
    sponsor_id: int = Field(ge=1, le=2**63 - 1)
    batch_indexes: list[int] = Field(min_length=1, max_length=10_000)


class BatchHold(WireModel):
    """A batch that reached a paused operation: kept aside until the operation resumes."""

    kind: Literal["hold"] = "hold"
    sponsor_id: int = Field(ge=1, le=2**63 - 1)
    batch: ItemBatch


OperationsMessage = TypeAdapter(
    Annotated[
        Annotated[OperationRequested, Tag("request")]
        | Annotated[RecipientChunk, Tag("recipients")]
        | Annotated[JobItemsChunk, Tag("job_items")]
        | Annotated[OperationAbort, Tag("abort")]
        | Annotated[ReleaseTick, Tag("release")]
        | Annotated[BatchHold, Tag("hold")]
        | Annotated[Redrive, Tag("redrive")]
        | Annotated[OperationEvict, Tag("evict")]
        | Annotated[QuotaUpdate, Tag("quota")],
        Discriminator(_kind("request")),
    ]
)
"""What the operations topic carries (``kind`` tells them apart; absent means a request)."""


class ResultBatch(WireModel):
    """Outcomes of one item batch: parallel lists, one entry per item of the batch."""

    operation_id: str
    sponsor_id: int
    operation_type: OperationType
    batch_index: int
    start_index: int
    statuses: list[ItemStatus]
    results: list[str | None]
    errors: list[ItemError] = Field(default_factory=list)
    processed_at: datetime
    duration_ms: float = Field(ge=0, description="Wall time spent processing the whole batch.")
    tier_id: int | None = None
    expires_at: datetime | None = None
    batch_name: str | None = None
    channel: Channel | None = None
    unit_cost: float = Field(default=0.0, ge=0, description="Cost of each successful item.")
    attempts: list[int] = Field(default_factory=list, description="Send attempts per item.")
    latencies_ms: list[float] = Field(
        default_factory=list,
        description="Time each item spent in provider calls (all its attempts), in ms.",
    )
    dealers: list[DealerRow | None] | None = Field(
        default=None, description="Dealer invitations: the dealer of each item."
    )
    item_ids: list[str] = Field(
        default_factory=list,
        description="Each item's id when it is not `<operationId>:<index>` (jobs: the id the "
        "owning system saw).",
    )

    @model_validator(mode="after")
    def _parallel_lists(self) -> Self:
        if len(self.statuses) != len(self.results):
            raise ValueError("statuses and results must have one entry per item")
        for name in ("attempts", "latencies_ms", "item_ids"):
            if getattr(self, name) and len(getattr(self, name)) != len(self.statuses):
                raise ValueError(f"{name} must be empty or have one entry per item")
        return self


class RecentResult(WireModel):
    index: int
    item_id: str
    status: ItemStatus
    result_data: str | None = None
    processed_at: datetime
    processing_duration_ms: float


class BatchSunk(WireModel):
    """Emitted after a result batch is stored in ClickHouse: the only input to progress counts."""

    kind: Literal["batch"] = "batch"
    operation_id: str
    sponsor_id: int
    batch_index: int
    count: int
    succeeded: int
    failed: int
    skipped: int
    errors: list[ItemError] = Field(default_factory=list)
    duration_ms: float = 0.0
    cost: float = Field(default=0.0, ge=0)
    sunk_at: datetime
    recent: list[RecentResult] = Field(default_factory=list, max_length=10)


class WebhookAttempt(WireModel):
    """One delivery attempt of a webhook, reported to the progress topic so status shows it."""

    kind: Literal["webhook"] = "webhook"
    operation_id: str
    sponsor_id: int
    event: str
    attempt: int
    status_code: int | None = None
    error: str | None = None
    delivered: bool
    final: bool
    at: datetime


ProgressMessage = TypeAdapter(
    Annotated[
        Annotated[BatchSunk, Tag("batch")] | Annotated[WebhookAttempt, Tag("webhook")],
        Discriminator(_kind("batch")),
    ]
)
"""What the progress topic carries: stored batches, and webhook delivery attempts."""


class ControlAction(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    RETHROTTLE = "rethrottle"


class ControlCommand(WireModel):
    """Cancel, pause, resume or rethrottle an operation; keyed by sponsor id on the control
    topic."""

    operation_id: str
    sponsor_id: int
    action: ControlAction
    requested_by: str
    requested_at: datetime
    throttle: Throttle | None = Field(default=None, description="For rethrottle: the changes.")

    @model_validator(mode="after")
    def _throttle_with_rethrottle(self) -> Self:
        if (self.action is ControlAction.RETHROTTLE) != (self.throttle is not None):
            raise ValueError("throttle is given with a rethrottle, and only with one")
        return self


class DeadLetter(WireModel):
    """A message the worker could not use, with the reason; the stream goes on without it."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    error_type: str
    payload: str = Field(description="The original value, decoded as UTF-8 with replacement.")
    failed_at: datetime
