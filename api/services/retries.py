"""Retrying an operation's failures: which items may go again, and as which recipients (a
send) or which job items (a job operation)."""

from __future__ import annotations

from analytics.interfaces import KeptState
from analytics.reader import Reader
from api.errors import ApiError
from schemas.job_wire import JobItem
from schemas.messages import DealerRow, ItemBatch, PreparedRecipient


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


def job_items(
    state: KeptState, sponsor_id: int, operation_id: str, indexes: list[int], batch_size: int
) -> list[JobItem]:
    """The original items of ``indexes`` from their stored batches, in order, each with its
    original item id (the owning system's idempotency key)."""
    wanted = set(indexes)
    stored = state.item_batches(sponsor_id, operation_id, sorted({i // batch_size for i in wanted}))
    found = [
        item
        for payload in stored.values()
        for item in ItemBatch.model_validate_json(payload).job_items or []
        if item.index in wanted
    ]
    return sorted(found, key=lambda item: item.index)


def recipients_gone(operation_id: str, retention_days: int) -> ApiError:
    """410 for a retry of an operation whose recipients expired or were erased."""
    return ApiError(
        410,
        "RECIPIENTS_EXPIRED",
        f"The recipients of {operation_id} are no longer stored (personal data is kept "
        f"{retention_days} days, or was erased on request): submit a new send instead",
        {"operationId": operation_id, "retentionDays": retention_days},
    )


def items_gone(operation_id: str, retention_days: int) -> ApiError:
    """410 for a retry of a job operation whose stored items expired or were erased."""
    return ApiError(
        410,
        "ITEMS_EXPIRED",
        f"The items of {operation_id} are no longer stored (they are kept {retention_days} "
        "days): submit the jobs again instead",
        {"operationId": operation_id, "retentionDays": retention_days},
    )
