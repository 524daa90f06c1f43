"""Quotas: a sponsor's limits, what it uses, and why a submit was refused.

The limits are the main seed's ``bulkOperationLimits``. A limit of ``null`` means unlimited.
Defaults come from the settings (``BULKOPS_QUOTA_*``) and can be overridden by an Admin for
every sponsor or for one; an override names only the limits it changes.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from schemas.common import WireModel

OPERATIONS_LIMIT = 10_000_000
ITEMS_LIMIT = 10**12
#: The most operations of one sponsor that can be unfinished at once, whatever its quota and
#: whoever submitted them. The worker keeps them in one table record, written with each
#: submit and end: at this bound it is at most ~0.8 MB, under the 1 MB of a Kafka message.
RUNNING_LIMIT = 10_000


class Quota(StrEnum):
    """The quotas, by the seed's names."""

    CONCURRENT = "maxConcurrentOperations"
    ITEMS_PER_OPERATION = "maxItemsPerOperation"
    OPERATIONS_PER_DAY = "maxOperationsPerDay"
    ITEMS_PER_DAY = "maxItemsPerDay"


class QuotaLimits(WireModel):
    """A sponsor's limits (``null``: unlimited). In an override, an absent field is inherited."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent_operations: int | None = Field(
        default=None,
        ge=0,
        le=RUNNING_LIMIT,
        strict=True,
        description="Operations not yet finished (queued, scheduled, paused or running). "
        f"Unlimited (null) still means at most {RUNNING_LIMIT:,}.",
    )
    max_items_per_operation: int | None = Field(
        default=None, ge=0, le=50_000_000, strict=True, description="Items in one operation."
    )
    max_operations_per_day: int | None = Field(
        default=None,
        ge=0,
        le=OPERATIONS_LIMIT,
        strict=True,
        description="Operations accepted per day (UTC).",
    )
    max_items_per_day: int | None = Field(
        default=None,
        ge=0,
        le=ITEMS_LIMIT,
        strict=True,
        description="Items of the operations accepted per day (UTC).",
    )

    def of(self, quota: Quota) -> int | None:
        return {
            Quota.CONCURRENT: self.max_concurrent_operations,
            Quota.ITEMS_PER_OPERATION: self.max_items_per_operation,
            Quota.OPERATIONS_PER_DAY: self.max_operations_per_day,
            Quota.ITEMS_PER_DAY: self.max_items_per_day,
        }[quota]

    def overridden_by(self, overrides: dict[str, int | None]) -> QuotaLimits:
        """These limits with the fields an override sets (by Python field name) replaced."""
        return QuotaLimits.model_validate({**self.model_dump(by_alias=False), **overrides})

    def set_fields(self) -> dict[str, int | None]:
        """The limits this override sets, by Python field name."""
        return self.model_dump(by_alias=False, include=self.model_fields_set)


class QuotaRefusal(WireModel):
    """Why an operation was not accepted: which quota, the use and the limit."""

    quota: Quota
    limit: int
    current: int = Field(description="Use before this operation.")
    requested: int = Field(description="What this operation would add.")
    retry_after_seconds: int | None = Field(
        default=None,
        description="When waiting helps and how long: daily quotas reset at midnight UTC. A "
        "full concurrency quota frees up when one of the sponsor's operations finishes.",
    )

    def message(self) -> str:
        return (
            f"Quota {self.quota.value} exceeded: {self.current} in use, this operation needs "
            f"{self.requested} more, limit {self.limit}"
        )


class QuotaUse(WireModel):
    """What a sponsor uses now: running operations, and today's operations and items."""

    concurrent_operations: int = 0
    operations_today: int = 0
    items_today: int = 0
    day: date | None = Field(default=None, description="The UTC day the daily counts are for.")


class QuotaUpdate(WireModel):
    """An Admin's change of limits, on the operations topic: for one sponsor (on its
    partition) or, with ``sponsorId`` null, the defaults (sent to every partition)."""

    kind: Literal["quota"] = "quota"
    sponsor_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    overrides: dict[str, int | None] = Field(
        description="Python field names of QuotaLimits set by the Admin (absent: inherited)."
    )
    requested_by: str = Field(min_length=1, max_length=200)
    requested_at: datetime
    update_id: str = Field(max_length=64, description="Lets the API see its update applied.")

    @field_validator("overrides", mode="before")
    @classmethod
    def _valid_limits(cls, value: object) -> object:
        """Limits checked like the API's (names in either spelling, ranges)."""
        if not isinstance(value, dict):
            return value
        return QuotaLimits.model_validate(value).set_fields()


class QuotaSnapshot(WireModel):
    """What the worker knows about a sponsor's quota (or, with ``sponsorId`` null, the
    default overrides), on the compacted quotas topic."""

    sponsor_id: int | None = None
    overrides: dict[str, int | None] = Field(default_factory=dict)
    use: QuotaUse = Field(default_factory=QuotaUse)
    update_ids: list[str] = Field(default_factory=list, max_length=16)
    updated_at: datetime
