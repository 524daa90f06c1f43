"""Turn snapshots and history rows into the seed's response shapes (percentages, TimeSpans)."""

from __future__ import annotations

from datetime import datetime, timedelta

from analytics.reader import HistoryRow
from schemas.common import ItemError, OperationStatus, OperationType
from schemas.responses import (
    BulkError,
    HistoryEntry,
    HistorySummary,
    Metrics,
    OperationStatusOut,
    RecentResultOut,
)
from schemas.status import OperationSnapshot

API_PREFIX = "/api/v1/bulk-operations"


def timespan(delta: timedelta | None) -> str | None:
    """.NET ``TimeSpan`` text as in the seed: ``HH:MM:SS`` plus up to 7 fraction digits."""
    if delta is None:
        return None
    ticks = max(round(delta.total_seconds() * 10_000_000), 0)
    seconds, fraction = divmod(ticks, 10_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, whole = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{whole:02d}"
    if fraction:
        text += "." + f"{fraction:07d}".rstrip("0")
    return text


def status_url(operation_id: str) -> str:
    return f"{API_PREFIX}/status/{operation_id}"


def _error(error: ItemError) -> BulkError:
    return BulkError.model_validate(error.model_dump())


def metrics(snapshot: OperationSnapshot, now: datetime) -> Metrics:
    total = snapshot.total_items
    processed = snapshot.processed_items
    progress = round(processed / total * 100, 1) if total else 0.0
    success_rate = round(snapshot.successful_items / processed * 100, 1) if processed else 0.0
    average = (
        timedelta(milliseconds=snapshot.processing_ms_total / processed) if processed else None
    )
    return Metrics(
        total_items=total,
        processed_items=processed,
        successful_items=snapshot.successful_items,
        failed_items=snapshot.failed_items,
        skipped_items=snapshot.skipped_items,
        progress_percentage=progress,
        success_rate=success_rate,
        average_processing_time=timespan(average),
        estimated_time_remaining=timespan(time_remaining(snapshot, now)),
        errors=[_error(e) for e in snapshot.errors],
    )


def time_remaining(snapshot: OperationSnapshot, now: datetime) -> timedelta | None:
    """From the rate observed since the operation started, and never before the schedule
    releases its last batch; zero once finished, unknown while paused."""
    if snapshot.status.is_terminal:
        return timedelta(0)
    if snapshot.status is OperationStatus.PAUSED:
        return None
    planned = snapshot.releases_end_at - now if snapshot.releases_end_at else None
    if snapshot.started_at is None or snapshot.processed_items == 0:
        return max(planned, timedelta(0)) if planned is not None else None
    elapsed = (now - snapshot.started_at).total_seconds()
    if elapsed <= 0:
        return None
    rate = snapshot.processed_items / elapsed
    observed = timedelta(seconds=(snapshot.total_items - snapshot.processed_items) / rate)
    return max(observed, planned) if planned is not None else observed


def status_out(snapshot: OperationSnapshot, now: datetime) -> OperationStatusOut:
    return OperationStatusOut(
        operation_id=snapshot.operation_id,
        operation_type=snapshot.operation_type,
        job_type=snapshot.job_type,
        operation_name=snapshot.operation_name,
        status=snapshot.status,
        total_items=snapshot.total_items,
        metrics=metrics(snapshot, now),
        created_at=snapshot.created_at,
        started_at=snapshot.started_at,
        completed_at=snapshot.completed_at,
        last_updated=snapshot.last_updated,
        current_phase=snapshot.current_phase,
        status_message=snapshot.status_message,
        stop_reason=snapshot.stop_reason,
        quota_refusal=snapshot.quota_refusal,
        cancelled_at=snapshot.cancelled_at,
        paused_at=snapshot.paused_at,
        pause_reason=snapshot.pause_reason,
        throttle=snapshot.throttle,
        scheduled_start=snapshot.scheduled_start,
        total_cost=round(snapshot.total_cost, 6),
        retry_of=snapshot.retry_of,
        webhook_state=snapshot.webhook_state,
        webhook_attempts=[
            a.model_dump(
                mode="json", include={"event", "attempt", "status_code", "error", "delivered", "at"}
            )
            for a in snapshot.webhook_attempts
        ],
        aggregates_url=f"{API_PREFIX}/aggregates/{snapshot.operation_id}",
        items_url=f"{API_PREFIX}/items/{snapshot.operation_id}",
        poll_after_seconds=poll_after(snapshot),
        next_steps=next_steps(snapshot),
        tips=tips(snapshot),
        recent_results=[
            RecentResultOut(
                index=r.index,
                item_id=r.item_id,
                status=r.status,
                result_data=r.result_data,
                processed_at=r.processed_at,
                processing_duration=timespan(timedelta(milliseconds=r.processing_duration_ms))
                or "00:00:00",
            )
            for r in snapshot.recent_results
        ],
    )


def poll_after(snapshot: OperationSnapshot) -> float:
    """Poll often early, less as the operation runs on (the backoff of the caller guide)."""
    if snapshot.status.is_terminal:
        return 0.0
    if snapshot.status is OperationStatus.PAUSED:
        return 5.0
    if snapshot.status is OperationStatus.QUEUED and snapshot.scheduled_start is not None:
        wait = (snapshot.scheduled_start - snapshot.last_updated).total_seconds()
        return float(min(max(wait, 1.0), 60.0))
    if snapshot.status is OperationStatus.QUEUED or not snapshot.total_items:
        return 1.0
    done = snapshot.processed_items / snapshot.total_items
    return 2.0 if done < 0.25 else 5.0 if done < 0.5 else 10.0


def next_steps(snapshot: OperationSnapshot) -> list[str]:
    op = snapshot.operation_id
    status = snapshot.status
    if status is OperationStatus.PAUSED:
        return [
            f"POST {API_PREFIX}/resume/{op} to go on where it stopped",
            f"POST {API_PREFIX}/cancel/{op} to stop it for good; items not sent end Skipped",
        ]
    if status is OperationStatus.QUEUED and snapshot.scheduled_start is not None:
        return [
            f"Nothing is sent before {snapshot.scheduled_start.isoformat()} (the schedule)",
            f"POST {API_PREFIX}/pause/{op} or /cancel/{op} to hold or drop it before then",
        ]
    if status is OperationStatus.QUEUED:
        return [
            "Wait for a worker to pick the operation up (usually under a second)",
            f"Poll {status_url(op)} every second, or follow /ws/bulk-operations/{op}",
        ]
    if not status.is_terminal:
        steps = [
            f"Poll {status_url(op)} every {poll_after(snapshot):.0f} s, or follow "
            f"/ws/bulk-operations/{op} for live progress",
            f"POST {API_PREFIX}/cancel/{op} to stop it; items not started end Skipped",
            f"POST {API_PREFIX}/pause/{op} to hold it; batches in flight finish first",
        ]
        if snapshot.failed_items:
            steps.append(f"GET {API_PREFIX}/items/{op}?status=Failed to see what failed so far")
        return steps
    if snapshot.quota_refusal is not None:
        return [
            f"GET {API_PREFIX}/quotas for your limits and use; submit again (the same "
            "Idempotency-Key is fine) when the quota allows it",
        ]
    steps = [f"GET {API_PREFIX}/aggregates/{op} for counts, error codes, cost and durations"]
    if snapshot.operation_type is OperationType.CODE_GENERATION and snapshot.successful_items:
        steps.append(f"GET {API_PREFIX}/codes/{op} to page through the generated codes")
    if snapshot.failed_items:
        steps.append(f"GET {API_PREFIX}/items/{op}?status=Failed to review the failures")
        steps.append(f"POST {API_PREFIX}/retry/{op} to re-send the retryable failures")
    return steps


def tips(snapshot: OperationSnapshot) -> list[str]:
    result = []
    if snapshot.total_items >= 10_000 and not snapshot.status.is_terminal:
        result.append("Large operations take minutes; polling faster does not speed them up")
    if snapshot.stop_reason == "BUDGET_EXCEEDED":
        result.append("The budget ran out: raise metadata.budgetLimit to send the rest")
    if snapshot.stop_reason == "STOP_ON_FIRST_ERROR":
        result.append("stopOnFirstError stopped the operation at its first failed item")
    return result


def history_entry(row: HistoryRow, live: OperationSnapshot | None) -> HistoryEntry:
    """A history row; counts and status come from the live view when it is newer."""
    status = OperationStatus(row.status)
    successful, failed, skipped = row.successful_items, row.failed_items, row.skipped_items
    completed_at = row.completed_at
    if live is not None and not status.is_terminal:
        status = live.status
        successful, failed, skipped = live.successful_items, live.failed_items, live.skipped_items
        completed_at = live.completed_at
    started = row.started_at or row.created_at
    return HistoryEntry(
        operation_id=row.operation_id,
        operation_name=row.operation_name,
        operation_type=OperationType(row.operation_type),
        status=status,
        total_items=row.total_items,
        successful_items=successful,
        failed_items=failed,
        skipped_items=skipped,
        created_at=row.created_at,
        completed_at=completed_at,
        duration=timespan(completed_at - started) if completed_at else None,
        created_by=row.requested_by,
        summary=HistorySummary(
            channel=row.channel,
            total_cost=row.total_cost,
            subscription_tier_id=row.subscription_tier_id,
            code_prefix=row.code_prefix,
        ),
    )
