"""REST request bodies, in the main seed's shape (``000_*``: "Toplu Kod Üretimi")."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, AnyHttpUrl, Field, ValidationInfo, field_validator

from schemas.common import ApiModel

PREFIX_PATTERN = r"^[A-Z0-9-]{1,20}$"
MAX_METADATA_BYTES = 8192


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


BoundedMetadata = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
CodePrefix = Annotated[
    str,
    Field(
        pattern=PREFIX_PATTERN,
        description="1-20 characters from A-Z, 0-9 and '-'.",
        examples=["L2025"],
    ),
]


class ProcessingOptions(ApiModel):
    """How the worker processes the items (``BulkProcessingOptions`` in the seed)."""

    batch_size: int = Field(default=50, ge=1, le=20000, description="Items per Kafka batch.")
    max_concurrency: int = Field(default=5, ge=1, le=100)
    retry_attempts: int = Field(default=3, ge=0, le=10)
    retry_delay_seconds: int = Field(default=30, ge=0, le=3600)
    stop_on_first_error: bool = False
    send_progress_notifications: bool = True
    callback_url: AnyHttpUrl | None = None
    processing_settings: BoundedMetadata = Field(default_factory=dict)


class CodeGenerationBatch(ApiModel):
    """A named slice of the quantity with its own prefix and metadata."""

    batch_name: str = Field(min_length=1, max_length=200, examples=["Antalya Bölgesi"])
    quantity: int = Field(gt=0, examples=[300])
    custom_prefix: CodePrefix | None = None
    batch_metadata: BoundedMetadata = Field(default_factory=dict)


class BulkCodeGenerationRequest(ApiModel):
    """``POST /api/v1/bulk-operations/generate-codes``.

    ``batches`` carve named slices out of ``quantity``; items not covered by a batch take
    ``codePrefix``. Their quantities may add up to at most ``quantity``.
    """

    operation_name: str = Field(default="Bulk Code Generation", min_length=1, max_length=200)
    sponsor_id: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="Only for Admin tokens acting for a sponsor; a Sponsor's own id is implied.",
    )
    subscription_tier_id: int = Field(ge=1, le=1000, examples=[3])
    quantity: int = Field(gt=0, examples=[1000])
    code_prefix: CodePrefix = "BULK"
    validity_days: int = Field(default=365, ge=1, le=3650)
    processing: ProcessingOptions = Field(default_factory=ProcessingOptions)
    batches: list[CodeGenerationBatch] = Field(default_factory=list, max_length=100)
    metadata: BoundedMetadata = Field(default_factory=dict)

    @field_validator("batches")
    @classmethod
    def _batches_fit_in_quantity(
        cls, batches: list[CodeGenerationBatch], info: ValidationInfo
    ) -> list[CodeGenerationBatch]:
        quantity = info.data.get("quantity")
        carved = sum(batch.quantity for batch in batches)
        if quantity is not None and carved > quantity:
            raise ValueError(f"batches add up to {carved} codes, more than quantity ({quantity})")
        return batches


SEED_CODE_GENERATION_EXAMPLE: dict[str, Any] = {
    "operationName": "Q4 2025 Kod Üretimi",
    "subscriptionTierId": 3,
    "quantity": 1000,
    "codePrefix": "L2025",
    "validityDays": 180,
    "processing": {"batchSize": 100, "maxConcurrency": 3, "retryAttempts": 2},
    "batches": [
        {
            "batchName": "Antalya Bölgesi",
            "quantity": 300,
            "customPrefix": "L2025ANT",
            "batchMetadata": {"region": "Antalya", "targetAudience": "Sera çiftçileri"},
        },
        {
            "batchName": "İzmir Bölgesi",
            "quantity": 400,
            "customPrefix": "L2025IZM",
            "batchMetadata": {"region": "İzmir", "targetAudience": "Zeytin üreticileri"},
        },
    ],
}
