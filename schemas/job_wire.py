"""The parts of a job operation that ride inside Bulkops' own messages.

Kept apart from :mod:`schemas.jobs` (the registry and the contract with other systems) because
:mod:`schemas.messages` needs them and :mod:`schemas.jobs` needs the API's response models,
which need :mod:`schemas.messages`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.common import WireModel

#: A job's release window is its maxConcurrency (at most 100), so this shows them all.
MAX_BATCHES_SHOWN = 100


class JobExecutor(StrEnum):
    """Who does the work on each item."""

    KAFKA = "kafka"
    HTTP = "http"


class JobItem(WireModel):
    """One item of a job batch: its index in the operation, its id (the idempotency key a
    worker should use: a batch can come twice) and what the caller submitted for it."""

    index: int = Field(ge=0)
    item_id: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any]


class JobRun(WireModel):
    """How one job operation runs: its type as registered when it was submitted (a later
    change to the type applies to later operations) and the operation's ``data``.

    Every item batch of the operation carries it, so it holds no JSON Schemas: items were
    validated at submit.
    """

    job_type: str
    type_version: int = Field(ge=1)
    executor: JobExecutor
    handler_url: str | None = None
    allow_private_handler: bool = False
    batch_size: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)
    max_retries: int = Field(ge=0)
    backoff_seconds: float = Field(ge=0)
    backoff_multiplier: float = Field(ge=1)
    max_backoff_seconds: float = Field(ge=0)
    rate_limit_per_second: float | None = None
    max_concurrency: int = Field(ge=1)
    data: dict[str, Any] = Field(default_factory=dict)

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 for the first)."""
        wait = self.backoff_seconds * self.backoff_multiplier ** (retry - 1)
        return float(min(wait, self.max_backoff_seconds))


class JobProgress(WireModel):
    """What a job operation's status snapshot adds so the API can show each item as a job of
    the ``002`` queue plan: which batches are out with the owning system right now (their
    items are ``processing``), and the type's retry limit."""

    batch_size: int = Field(ge=1)
    max_retries: int = Field(ge=0)
    batches_in_flight: list[int] = Field(
        default_factory=list,
        max_length=MAX_BATCHES_SHOWN,
        description="Released and not yet counted, lowest first (at most the first 100).",
    )
