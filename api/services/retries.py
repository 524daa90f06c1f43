"""Retrying an operation's failures: which items may go again, as which recipients (a send)
or which job items (a job operation), queued as a new operation linked to the first.

The route (``POST /retry/{operationId}``) keeps the HTTP parts: idempotency, one retry at a
time per operation, the answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request

from analytics.interfaces import KeptState
from analytics.reader import Reader
from analytics.retention import HELD_BATCH_DAYS
from api.auth import Principal
from api.deps import settings_of, store_of
from api.errors import ApiError
from api.services import jobs, quotas
from api.services.submission import planned_send, queue_link_send
from schemas.job_wire import JobItem
from schemas.link_wire import DealerRow, PreparedRecipient
from schemas.messages import ItemBatch, OperationRequested
from schemas.responses import DryRunResult, RetryResult
from schemas.status import OperationSnapshot

log = logging.getLogger("bulkops.api")


@dataclass(frozen=True)
class Failures:
    """An operation's failed items (matching the filter) and the retryable ones' indexes."""

    failed: int
    retryable: list[int]

    def result(self, original: str, retry: str) -> RetryResult:
        return RetryResult(
            original_operation_id=original,
            retry_operation_id=retry,
            failed_items_count=self.failed,
            retryable_items_count=len(self.retryable),
            non_retryable_items_count=self.failed - len(self.retryable),
        )


async def failures_of(
    request: Request, snapshot: OperationSnapshot, code: str | None, category: str | None
) -> Failures:
    failed, retryable = await asyncio.to_thread(
        failures,
        store_of(request).reader,
        snapshot.sponsor_id,
        snapshot.operation_id,
        code=code,
        category=category,
    )
    return Failures(failed, list(retryable))


async def retryable_request(
    request: Request, snapshot: OperationSnapshot, found: Failures
) -> OperationRequested:
    """The original request of an operation with items to retry (409 otherwise)."""
    if not found.retryable:
        raise ApiError(
            409,
            "NOTHING_TO_RETRY",
            "No retryable failed items" + (" match the filter" if found.failed else ""),
            {"failedItemsCount": found.failed, "nonRetryableItemsCount": found.failed},
        )
    original = await asyncio.to_thread(
        store_of(request).state.request, snapshot.sponsor_id, snapshot.operation_id
    )
    if original is None or (original.link_send is None and original.job is None):
        raise ApiError(409, "NOTHING_TO_RETRY", "Only link sends and jobs can be retried")
    return original


async def queue_retry(
    request: Request,
    principal: Principal,
    original: OperationRequested,
    found: Failures,
    *,
    retry_id: str,
    request_hash: str | None,
) -> int:
    """The retryable failures queued as the operation ``retry_id`` (their original recipients
    or job items, 410 once those are no longer stored); how many."""
    if original.job is not None:
        items = await asyncio.to_thread(
            job_items,
            store_of(request).state,
            original.sponsor_id,
            original.operation_id,
            found.retryable,
            original.job.batch_size,
        )
        if not items:
            kept = max(settings_of(request).retention_personal_days, HELD_BATCH_DAYS)
            raise items_gone(original.operation_id, kept)
        await jobs.queue_retry(
            request,
            principal,
            original=original,
            operation_id=retry_id,
            items=items,
            request_hash=request_hash,
        )
        count = len(items)
    else:
        count = await _queue_send_retry(request, principal, original, found, retry_id, request_hash)
    log.info("operation %s: retrying %d failed items as %s", original.operation_id, count, retry_id)
    return count


async def _queue_send_retry(
    request: Request,
    principal: Principal,
    original: OperationRequested,
    found: Failures,
    retry_id: str,
    request_hash: str | None,
) -> int:
    chosen = await asyncio.to_thread(
        recipients,
        store_of(request).reader,
        original.sponsor_id,
        original.operation_id,
        found.retryable,
    )
    if not chosen:
        raise recipients_gone(original.operation_id, settings_of(request).retention_personal_days)
    assert original.link_send is not None
    await queue_link_send(
        request,
        principal,
        sponsor_id=original.sponsor_id,
        operation_id=retry_id,
        name=f"Retry of {original.operation_name}"[:200],
        spec=original.link_send,
        recipients=chosen,
        now=datetime.now(UTC),
        retry_of=original.operation_id,
        operation_type=original.operation_type,
        request_hash=request_hash,
        auto_pause=original.auto_pause,
        metadata=original.metadata,
        priority=original.priority,
    )
    return len(chosen)


async def plan(
    request: Request,
    principal: Principal,
    snapshot: OperationSnapshot,
    code: str | None,
    category: str | None,
) -> DryRunResult:
    """A dry run of the retry: what would go again, and the quota it would take."""
    found = await failures_of(request, snapshot, code, category)
    original = await retryable_request(request, snapshot, found)
    count = len(found.retryable)
    if original.job is not None:
        return DryRunResult(
            operation_type=original.operation_type,
            total_items=count,
            valid_items=count,
            batches=-(-count // original.job.batch_size),
            estimated_cost=0.0,
            quota=quotas.estimate(request, principal, snapshot.sponsor_id, count),
            planned_start=datetime.now(UTC),
        )
    assert original.link_send is not None
    return planned_send(
        request, principal, snapshot.sponsor_id, original.operation_type, count, original.link_send
    )


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
