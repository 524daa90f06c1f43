"""The sink agent, on the results topic: stores result batches in bulk, then announces each
stored batch on the progress topic. A batch is counted only from that announcement, so an
operation is ``Completed`` only when all its items can be queried."""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT
from pydantic import ValidationError

from core.topics import sponsor_key
from schemas.common import ItemStatus
from schemas.messages import BatchSunk, RecentResult, ResultBatch
from streams.context import WorkerContext, check_key, now
from streams.kinds import kind_of

_RECENT_PER_BATCH = 3


async def store(ctx: WorkerContext, events: Sequence[EventT[bytes]]) -> int:
    """Store the result batches of ``events`` (malformed ones are dead-lettered) and announce
    them; returns how many were stored."""
    batches: list[ResultBatch] = []
    for event in events:
        try:
            result = ResultBatch.model_validate_json(event.value)
            check_key(event, result.sponsor_id)
            batches.append(result)
        except (ValidationError, ValueError) as exc:
            await ctx.dead_letter(event, str(exc), exc)
    if not batches:
        return 0
    side = [rows for r in batches for rows in kind_of(r.operation_type).side_rows(r)]
    await ctx.with_retry(
        f"sink: storing {len(batches)} result batches", ctx.writer.insert_results, batches, side
    )
    for result in batches:
        await ctx.send(ctx.out.progress, sponsor_key(result.sponsor_id), summarise(ctx, result))
    return len(batches)


def summarise(ctx: WorkerContext, result: ResultBatch) -> BatchSunk:
    """What progress counts of a stored batch (its errors capped at what status keeps)."""
    counts = dict.fromkeys(ItemStatus, 0)
    for status in result.statuses:
        counts[status] += 1
    n = len(result.statuses)
    return BatchSunk(
        operation_id=result.operation_id,
        sponsor_id=result.sponsor_id,
        batch_index=result.batch_index,
        count=n,
        succeeded=counts[ItemStatus.SUCCESS],
        failed=counts[ItemStatus.FAILED],
        skipped=counts[ItemStatus.SKIPPED],
        errors=result.errors[: ctx.settings.max_errors_in_status],
        duration_ms=result.duration_ms,
        cost=counts[ItemStatus.SUCCESS] * result.unit_cost,
        sunk_at=now(),
        recent=[
            RecentResult(
                index=result.start_index + i,
                item_id=(
                    result.item_ids[i]
                    if result.item_ids
                    else f"{result.operation_id}:{result.start_index + i}"
                ),
                status=result.statuses[i],
                result_data=result.results[i],
                processed_at=result.processed_at,
                processing_duration_ms=result.duration_ms / n,
            )
            for i in range(max(0, n - _RECENT_PER_BATCH), n)
        ],
    )
