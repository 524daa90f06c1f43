"""The parts of a link send (and of a dealer invitation, which is one) that ride inside
Bulkops' own messages: the send's settings and each recipient as the API prepared it.

Kept apart from :mod:`schemas.messages`, which carries them, as :mod:`schemas.job_wire` is for
jobs.
"""

from __future__ import annotations

from pydantic import Field

from schemas.common import Channel, ItemError, WireModel


class DealerRow(WireModel):
    """One dealer of an Excel invitation upload, as validated by the API.

    ``codes`` is filled by the worker when it reserves them from the sponsor's inventory.
    """

    row_number: int = Field(ge=2, description="The row in the uploaded sheet.")
    email: str = Field(max_length=254)
    phone: str = Field(max_length=32, description="E.164")
    dealer_name: str = Field(max_length=200)
    tier: str = Field(max_length=8, description="S, M, L or XL")
    tier_id: int = Field(ge=1)
    code_count: int = Field(ge=0, le=1000)
    token: str = Field(max_length=64, description="The invitation's secret token.")
    invitation_type: str = Field(max_length=16)
    codes: list[str] = Field(default_factory=list, max_length=1000)


class PreparedRecipient(WireModel):
    """A recipient validated and rendered by the API: the worker only sends."""

    index: int = Field(ge=0)
    name: str
    address: str | None = Field(description="E.164 phone number or normalised e-mail address.")
    message: str | None = None
    idempotency_key: str | None = Field(
        default=None,
        description="Provider idempotency key when not the item id: a retry reuses the "
        "original item's, so a message that did get through is not sent twice.",
    )
    skip: ItemError | None = Field(
        default=None, description="Set when validation failed: the item ends Skipped with it."
    )
    dealer: DealerRow | None = None


class LinkSendSpec(WireModel):
    """Everything about a link send but its recipients, which follow in ``RecipientChunk``s."""

    channel: Channel
    subject: str = Field(max_length=200)
    batch_size: int = Field(ge=1, le=5000)
    max_concurrency: int = Field(ge=1, le=100)
    retry_attempts: int = Field(ge=0, le=10)
    retry_delay_seconds: float = Field(ge=0, le=3600)
    stop_on_first_error: bool = False
    budget_limit: float | None = Field(default=None, gt=0)
    price_per_message: float = Field(
        ge=0, description="Snapshotted at submit from the price table."
    )
    recipient_chunks: int = Field(ge=1)
    deliver: bool = Field(
        default=True, description="False: record the items (dealer invitations) without a message."
    )
