"""Operation templates: the seed's ready-made ones and the body for saving a sponsor's own."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from schemas.common import ApiModel, Channel


class TemplateProcessing(ApiModel):
    batch_size: int = Field(strict=True, default=50, ge=1, le=5000)
    max_concurrency: int = Field(strict=True, default=5, ge=1, le=100)
    retry_attempts: int = Field(strict=True, default=3, ge=0, le=10)


class SavedTemplate(ApiModel):
    """``POST /api/v1/bulk-operations/templates``: save (or replace, by name) a link template."""

    name: str = Field(min_length=1, max_length=100, examples=["Harvest reminder"])
    channel: Channel = Channel.SMS
    message: str = Field(
        min_length=1, max_length=1600, examples=["Merhaba {name}, hasat kampanyası: {link}"]
    )
    processing_options: TemplateProcessing = Field(default_factory=TemplateProcessing)


# The seed's templates (section "İşlem Şablonları"), in its snake_case shape.
SEED_LINK_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "Sponsorship Invitation",
        "channel": "WhatsApp",
        "message": (
            "Merhaba {name}! Tarım sponsorluğu programımıza katılmak için bu linki kullanın: {link}"
        ),
        "processing_options": {"batch_size": 25, "max_concurrency": 3, "retry_attempts": 2},
        "source": "builtin",
    },
    {
        "name": "SMS Campaign",
        "channel": "SMS",
        "message": "Değerli çiftçimiz {name}, ücretsiz tarım analizi için: {link}. Kod: {code}",
        "processing_options": {"batch_size": 50, "max_concurrency": 5, "retry_attempts": 3},
        "source": "builtin",
    },
]
SEED_CODE_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "Small Batch (S Tier)",
        "quantity": 100,
        "subscription_tier_id": 1,
        "code_prefix": "SMLS",
        "validity_days": 90,
    },
    {
        "name": "Large Batch (L Tier)",
        "quantity": 500,
        "subscription_tier_id": 3,
        "code_prefix": "LRGL",
        "validity_days": 180,
    },
    {
        "name": "Enterprise (XL Tier)",
        "quantity": 1000,
        "subscription_tier_id": 4,
        "code_prefix": "XLEN",
        "validity_days": 365,
    },
]
