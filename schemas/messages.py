"""Kafka message contracts.

Every message of the flow is keyed by the sponsor id (as its decimal string) except the
operation-status snapshots, which are keyed by operation id on a compacted topic.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from schemas import SCHEMA_VERSION
from schemas.common import (
    ErrorCategory,
    ItemStatus,
    OperationStatus,
    OperationType,
    WireModel,
)
from schemas.requests import BulkCodeGenerationRequest

OPERATION_ID_PATTERN = r"^[a-z]+_[0-9a-f]{32}$"


class OperationRequested(WireModel):
    """One submitted operation, as the API (or another system) produces it to the topic."""

    schema_version: int = SCHEMA_VERSION
    operation_id: str = Field(pattern=OPERATION_ID_PATTERN, examples=["codegen_0f1e..."])
    operation_type: OperationType
    sponsor_id: int = Field(ge=1, le=2**63 - 1)
    requested_by: str = Field(min_length=1, max_length=200)
    requested_at: datetime
    total_items: int = Field(gt=0)
    code_generation: BulkCodeGenerationRequest | None = None

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Self:
        if self.operation_type is OperationType.CODE_GENERATION:
            if self.code_generation is None:
                raise ValueError("codeGeneration is required for BulkCodeGeneration")
            if self.code_generation.quantity != self.total_items:
                raise ValueError("totalItems must equal codeGeneration.quantity")
        else:
            raise ValueError(f"operation type {self.operation_type} is not handled yet")
        return self

    @property
    def operation_name(self) -> str:
        assert self.code_generation is not None
        return self.code_generation.operation_name

    @property
    def batch_size(self) -> int:
        assert self.code_generation is not None
        return self.code_generation.processing.batch_size


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


class ItemError(WireModel):
    """The seed's ``BulkError``."""

    item_index: int
    item_id: str
    error_code: str
    error_message: str
    error_category: ErrorCategory
    is_retryable: bool = False
    retry_count: int = 0


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

    @model_validator(mode="after")
    def _parallel_lists(self) -> Self:
        if len(self.statuses) != len(self.results):
            raise ValueError("statuses and results must have one entry per item")
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

    operation_id: str
    sponsor_id: int
    batch_index: int
    count: int
    succeeded: int
    failed: int
    skipped: int
    errors: list[ItemError] = Field(default_factory=list)
    duration_ms: float = 0.0
    sunk_at: datetime
    recent: list[RecentResult] = Field(default_factory=list, max_length=10)


class OperationSnapshot(WireModel):
    """State of one operation, published to the compacted status topic (key = operation id)."""

    schema_version: int = SCHEMA_VERSION
    operation_id: str
    sponsor_id: int
    operation_type: OperationType
    operation_name: str
    requested_by: str
    status: OperationStatus
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
    errors: list[ItemError] = Field(default_factory=list)
    recent_results: list[RecentResult] = Field(default_factory=list)
    version: int = Field(
        default=0, ge=0, description="Grows with every change; readers keep the highest."
    )


class ControlAction(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"


class ControlCommand(WireModel):
    """Cancel / pause / resume an operation (consumed by the lifecycle work of issue #4)."""

    operation_id: str
    sponsor_id: int
    action: ControlAction
    requested_by: str
    requested_at: datetime


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
