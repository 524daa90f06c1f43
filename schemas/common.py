"""Shared building blocks: the main seed's statuses and error categories, and the base models."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class OperationStatus(StrEnum):
    QUEUED = "Queued"
    VALIDATING = "Validating"
    PROCESSING = "Processing"
    PAUSED = "Paused"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    PARTIALLY_COMPLETED = "PartiallyCompleted"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        OperationStatus.COMPLETED,
        OperationStatus.FAILED,
        OperationStatus.CANCELLED,
        OperationStatus.PARTIALLY_COMPLETED,
    }
)


class ItemStatus(StrEnum):
    PENDING = "Pending"
    PROCESSING = "Processing"
    SUCCESS = "Success"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    RETRYING = "Retrying"


class ErrorCategory(StrEnum):
    VALIDATION = "Validation"
    PROCESSING = "Processing"
    NETWORK = "Network"
    SYSTEM = "System"
    BUSINESS = "Business"


class Channel(StrEnum):
    SMS = "SMS"
    WHATSAPP = "WhatsApp"
    EMAIL = "Email"


class OperationType(StrEnum):
    CODE_GENERATION = "BulkCodeGeneration"
    LINK_SEND = "BulkLinkSend"
    DEALER_INVITATION = "BulkDealerInvitation"
    JOB = "BulkJob"


class ApiModel(BaseModel):
    """camelCase on the wire as in the seed; snake_case accepted too; unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        str_strip_whitespace=True,
    )


class WireModel(BaseModel):
    """Kafka messages: camelCase, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
    )


class ItemError(WireModel):
    """The seed's ``BulkError``."""

    item_index: int
    item_id: str
    error_code: str
    error_message: str
    error_category: ErrorCategory
    is_retryable: bool = False
    retry_count: int = 0
