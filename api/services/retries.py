"""Retrying an operation's failures: which items may go again, and as which recipients."""

from __future__ import annotations

from analytics.reader import Reader
from api.errors import ApiError
from schemas.messages import DealerRow, PreparedRecipient


def failures(
    reader: Reader,
    sponsor_id: int,
    operation_id: str,
    *,
    code: str | None,
    category: str | None,
) -> tuple[int, list[int]]:
    """How many items failed (matching the filter), and the indexes of the retryable ones."""
    failed = reader.failed_items(sponsor_id, operation_id, code=code, category=category)
    return len(failed), [index for index, retryable in failed if retryable]


def recipients(
    reader: Reader, sponsor_id: int, operation_id: str, indexes: list[int]
) -> list[PreparedRecipient]:
    """The original recipients of ``indexes``, renumbered, each with its original item id as
    the provider idempotency key (a message that did get through is not sent twice)."""
    rows = reader.recipients(sponsor_id, operation_id, indexes)
    return [
        PreparedRecipient(
            index=i,
            name=name,
            address=address,
            message=message,
            idempotency_key=key,
            dealer=DealerRow.model_validate_json(dealer) if dealer else None,
        )
        for i, (_, name, address, message, key, dealer) in enumerate(rows)
    ]


def recipients_gone(operation_id: str, retention_days: int) -> ApiError:
    """410 for a retry of an operation whose recipients expired or were erased."""
    return ApiError(
        410,
        "RECIPIENTS_EXPIRED",
        f"The recipients of {operation_id} are no longer stored (personal data is kept "
        f"{retention_days} days, or was erased on request): submit a new send instead",
        {"operationId": operation_id, "retentionDays": retention_days},
    )
