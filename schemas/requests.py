"""REST request bodies, in the main seed's shape (``000_*``: "Toplu Kod Üretimi")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.common import ApiModel, Channel

PREFIX_PATTERN = r"^[A-Z0-9-]{1,20}$"
MAX_METADATA_BYTES = 8192


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    """Free-form JSON that every later hop can carry: at most 8 KiB, integers within 64 bits."""
    try:
        size = len(orjson.dumps(value))
    except TypeError as exc:  # orjson refuses integers beyond 64 bits
        raise ValueError("numbers must fit in 64 bits") from exc
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


BoundedMetadata = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
Priority = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=10,
        description="1 (low) to 10 (high): the operation's share of its partition while others "
        "run (its release window is weighted by it).",
    ),
]
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

    batch_size: int = Field(
        strict=True, default=50, ge=1, le=20000, description="Items per Kafka batch."
    )
    max_concurrency: int = Field(strict=True, default=5, ge=1, le=100)
    retry_attempts: int = Field(strict=True, default=3, ge=0, le=10)
    retry_delay_seconds: int = Field(strict=True, default=30, ge=0, le=3600)
    stop_on_first_error: bool = Field(default=False, strict=True)
    pause_on_error_rate: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=1,
        description="Pause the operation by itself when this share of the last "
        "`pauseOnErrorWindow` items failed (e.g. 0.2): a wrong template or a dead provider "
        "then does not burn the whole campaign. Resume or cancel as usual.",
        examples=[0.2],
    )
    pause_on_error_window: int = Field(
        strict=True,
        default=100,
        ge=10,
        le=100_000,
        description="How many of the latest items `pauseOnErrorRate` looks at.",
    )
    send_progress_notifications: bool = Field(default=True, strict=True)
    callback_url: AnyHttpUrl | None = None
    processing_settings: BoundedMetadata = Field(default_factory=dict)


class CodeGenerationBatch(ApiModel):
    """A named slice of the quantity with its own prefix and metadata."""

    batch_name: str = Field(min_length=1, max_length=200, examples=["Antalya Bölgesi"])
    quantity: int = Field(strict=True, gt=0, le=50_000_000, examples=[300])
    custom_prefix: CodePrefix | None = None
    batch_metadata: BoundedMetadata = Field(default_factory=dict)


class BulkCodeGenerationRequest(ApiModel):
    """``POST /api/v1/bulk-operations/generate-codes``.

    ``batches`` carve named slices out of ``quantity``; items not covered by a batch take
    ``codePrefix``. Their quantities may add up to at most ``quantity``.
    """

    operation_name: str = Field(default="Bulk Code Generation", min_length=1, max_length=200)
    sponsor_id: int | None = Field(
        strict=True,
        default=None,
        ge=1,
        le=2**63 - 1,
        description="Only for Admin tokens acting for a sponsor; a Sponsor's own id is implied.",
    )
    subscription_tier_id: int = Field(strict=True, ge=1, le=1000, examples=[3])
    quantity: int = Field(strict=True, gt=0, le=50_000_000, examples=[1000])
    code_prefix: CodePrefix = "BULK"
    validity_days: int = Field(strict=True, default=365, ge=1, le=3650)
    processing: ProcessingOptions = Field(default_factory=ProcessingOptions)
    batches: list[CodeGenerationBatch] = Field(default_factory=list, max_length=100)
    priority: Priority = 5
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


Weekday = Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SCHEDULE_SKEW_SECONDS = 60
"""A ``scheduledDate`` this far in the past is taken as "now" (clock skew); older is refused."""


class SchedulingOptions(ApiModel):
    """``BulkSchedulingOptions`` of the seed: when and how fast the batches go out.

    ``preferredHours`` lists the local starts of one-hour sending windows and
    ``avoidWeekdays`` whole local days without sends, both in ``timeZone``; they apply
    whenever given. ``spreadDurationMinutes`` may be fractional (0.5 = 30 s).
    """

    is_scheduled: bool = Field(default=False, strict=True)
    scheduled_date: datetime | None = Field(
        default=None, description="Start (ISO 8601 with offset); required when isScheduled."
    )
    time_zone: str = Field(default="Europe/Istanbul", max_length=64, examples=["Europe/Istanbul"])
    spread_over_time: bool = Field(default=False, strict=True)
    spread_duration_minutes: float = Field(strict=True, default=60, ge=1 / 60, le=60 * 24 * 7)
    preferred_hours: list[Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]] = Field(
        default_factory=list, max_length=24, examples=[["09:00", "14:00"]]
    )
    avoid_weekdays: list[Weekday] = Field(
        default_factory=list, max_length=7, examples=[["Saturday", "Sunday"]]
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value

    @field_validator("scheduled_date")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("scheduledDate needs an offset or Z (e.g. 2025-08-20T09:00:00Z)")
        return value

    @model_validator(mode="after")
    def _possible(self) -> Self:
        if self.is_scheduled:
            if self.scheduled_date is None:
                raise ValueError("scheduledDate is required when isScheduled is true")
            earliest = datetime.now(UTC) - timedelta(seconds=SCHEDULE_SKEW_SECONDS)
            if self.scheduled_date < earliest:
                raise ValueError("scheduledDate is in the past")
        if len(set(self.avoid_weekdays)) == 7:
            raise ValueError("avoidWeekdays excludes every day: the operation could never run")
        return self


class BulkLinkRecipient(ApiModel):
    """One recipient (``BulkLinkRecipient``); the channel decides which address is needed."""

    name: str = Field(min_length=1, max_length=200, examples=["Ahmet Çiftçi"])
    phone_number: str | None = Field(default=None, max_length=32, examples=["+905551234567"])
    email: str | None = Field(default=None, max_length=254, examples=["ahmet@example.com"])
    sponsorship_code: str | None = Field(default=None, max_length=64, examples=["AGRI-2025-001"])
    personalization_data: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")],
        StrictStr | StrictBool | Annotated[StrictInt, Field(ge=-(2**63), lt=2**63)] | StrictFloat,
    ] = Field(default_factory=dict, max_length=50)
    priority: int = Field(strict=True, default=5, ge=1, le=10)
    custom_message: str | None = Field(default=None, max_length=1600)

    @field_validator("personalization_data")
    @classmethod
    def _short_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if isinstance(item, str) and len(item) > 500:
                raise ValueError(f"{key}: values are at most 500 characters")
        return value


class LinkSendMetadata(ApiModel):
    """The seed's metadata; ``budgetLimit`` caps the operation's cost (same currency as prices)."""

    model_config = ApiModel.model_config | {"extra": "allow"}

    campaign_id: str | None = Field(default=None, max_length=100)
    budget_limit: float | None = Field(strict=True, default=None, gt=0)
    cost_center: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _bounded_extras(self) -> Self:
        _bounded_json(self.model_extra or {})
        return self


class BulkLinkSendRequest(ApiModel):
    """``POST /api/v1/bulk-operations/send-links``."""

    operation_name: str = Field(default="Bulk Link Send", min_length=1, max_length=200)
    sponsor_id: int | None = Field(
        strict=True,
        default=None,
        ge=1,
        le=2**63 - 1,
        description="Only for Admin tokens acting for a sponsor; a Sponsor's own id is implied.",
    )
    recipients: list[BulkLinkRecipient] = Field(min_length=1)
    message_template: str = Field(min_length=1, max_length=1600)
    channel: Channel = Channel.SMS
    scheduling: SchedulingOptions = Field(default_factory=SchedulingOptions)
    processing: ProcessingOptions = Field(default_factory=ProcessingOptions)
    priority: Priority = 5
    metadata: LinkSendMetadata = Field(default_factory=LinkSendMetadata)


SEED_LINK_SEND_EXAMPLE: dict[str, Any] = {
    "operationName": "Tarım Kooperatifi 2025 Kampanyası",
    "recipients": [
        {
            "name": "Ahmet Çiftçi",
            "phoneNumber": "+905551234567",
            "email": "ahmet@example.com",
            "personalizationData": {"region": "Antalya", "cropType": "domates"},
            "priority": 8,
            "customMessage": "Merhaba {name}, {region} bölgesi için özel sponsorluk! {link}",
        },
        {
            "name": "Ayşe Yılmaz",
            "phoneNumber": "05321234567",
            "personalizationData": {"region": "İzmir"},
        },
    ],
    "messageTemplate": "Merhaba {name}! Tarım sponsorluğu programımıza katılmak için: {link}",
    "channel": "WhatsApp",
    "processing": {
        "batchSize": 25,
        "maxConcurrency": 3,
        "retryAttempts": 2,
        "retryDelaySeconds": 1,
    },
    "metadata": {"campaignId": "CAMP-2025-Q3", "budgetLimit": 500, "costCenter": "Marketing"},
}


class RethrottleRequest(ApiModel):
    """Changes to how fast a running or scheduled send goes; what is absent stays."""

    max_concurrency: int | None = Field(
        default=None, strict=True, ge=1, le=100, description="Sends in flight at once."
    )
    rate_per_second: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=100_000,
        description="This operation's own limit of sends per second. Above the channel's "
        "limit it is capped to it (and the answer says so).",
    )
    spread_duration_minutes: float | None = Field(
        default=None,
        strict=True,
        ge=1 / 60,
        le=60 * 24 * 7,
        description="Spread the batches of a scheduled send over this long from its start.",
    )

    @model_validator(mode="after")
    def _something_changes(self) -> Self:
        if not self.model_fields_set - {name for name, v in self if v is None}:
            raise ValueError(
                "give at least one of maxConcurrency, ratePerSecond, spreadDurationMinutes"
            )
        return self
