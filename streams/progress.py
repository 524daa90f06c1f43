"""Per-operation progress: pure arithmetic, kept in a Faust table by ``streams.app``.

Delivery is at-least-once, so the same ``BatchSunk`` may arrive twice. Each operation keeps a
bitmap with one bit per item batch; a batch's counts are added only when its bit flips, so
every item's final outcome is counted exactly once however often a batch is replayed. The
bitmap lives in the same table value as the counters, so one changelog write carries both.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import TypeGuard

from pydantic import Field, field_serializer, field_validator

from core.schedule import open_seconds, planned_start, releases_end
from schemas.common import OperationStatus
from schemas.job_wire import MAX_BATCHES_SHOWN, JobProgress, JobRun
from schemas.link_wire import LinkSendSpec
from schemas.messages import BatchSunk, OperationRequested
from schemas.quotas import QuotaRefusal
from schemas.run_rules import AutoPauseRule, ReleaseSchedule, Throttle
from schemas.status import OperationSnapshot
from streams.bitmaps import bit, indexes_of, with_bit

MAX_RECENT_RESULTS = 10
#: Auto-pause judges no fewer items than this.
MIN_JUDGED = 10


_WORKER_ONLY = {
    "done",
    "serial_base",
    "subscription_tier_id",
    "code_prefix",
    "link",
    "job",
    "exploded",
    "reserved",
    "cost_reserved",
    "partial_batch",
    "partial_allowed",
    "callback_url",
    "progress_notifications",
    "milestones_notified",
    "schedule",
    "released",
    "released_count",
    "held",
    "held_count",
    "paused_seconds",
    "submission_id",
    "partition",
    "release_window",
    "auto_pause",
    "outcome_window",
}
_BITMAPS = ("done", "exploded", "reserved", "released", "held")


class OperationState(OperationSnapshot):
    """A snapshot plus what only the worker needs: the batch bitmap and the serial range."""

    done: bytes = b""
    serial_base: int = 0
    subscription_tier_id: int | None = None
    code_prefix: str | None = None
    # Link sends: the spec every batch carries, why the operation stopped early (if it did),
    # which batches were exploded from chunks, and the budget reserved batch by batch.
    link: LinkSendSpec | None = None
    # Jobs: how the operation runs (its type as submitted, its data); batches come in chunks.
    job: JobRun | None = None
    exploded: bytes = b""
    reserved: bytes = b""
    cost_reserved: float = 0.0
    partial_batch: int | None = None
    partial_allowed: int = 0
    callback_url: str | None = None
    progress_notifications: bool = False
    milestones_notified: int = 0
    # Release control: which batches went to the items topic, which wait in ClickHouse
    # (paused, or not due yet), and the open time spent paused (it does not count for a spread).
    schedule: ReleaseSchedule | None = None
    released: bytes = b""
    released_count: int = 0
    held: bytes = b""
    held_count: int = 0
    paused_seconds: float = 0.0
    # Which submit attempt registered the operation (messages of another are ignored), and
    # the partition its sponsor's messages live on (what the stall watchdog watches).
    submission_id: str | None = None
    partition: int | None = None
    # At most this many batches released and not yet counted (0: no limit): fair turns.
    release_window: int = 0
    # Auto-pause on errors: the rule, and [judged, failed] of the latest batches counted.
    auto_pause: AutoPauseRule | None = None
    outcome_window: list[tuple[int, int]] = Field(default_factory=list)
    # Operator alerts already raised about it (streams/alerts.py), so each is raised once.
    alerts: list[str] = Field(default_factory=list)

    @field_serializer(*_BITMAPS, when_used="json")
    def _bitmap_as_base64(self, value: bytes) -> str:
        return base64.b64encode(value).decode()

    @field_validator(*_BITMAPS, mode="before")
    @classmethod
    def _bitmap_from_base64(cls, value: object) -> object:
        return base64.b64decode(value) if isinstance(value, str) else value

    @property
    def chunk_batch_size(self) -> int | None:
        """The batch size of an operation whose batches come in chunks (link sends, dealer
        invitations, jobs); None for one planned from its request alone (codes)."""
        if self.link is not None:
            return self.link.batch_size
        if self.job is not None:
            return self.job.batch_size
        return None

    def snapshot(self) -> OperationSnapshot:
        snapshot = OperationSnapshot.model_validate(self.model_dump(exclude=_WORKER_ONLY))
        if self.job is not None:
            snapshot.job_progress = JobProgress(
                batch_size=self.job.batch_size,
                max_retries=self.job.max_retries,
                batches_in_flight=outstanding(self)[:MAX_BATCHES_SHOWN],
            )
        return snapshot


def register(
    request: OperationRequested,
    *,
    batches_total: int,
    serial_base: int,
    now: datetime,
    partition: int | None = None,
    release_window: int = 0,
) -> OperationState:
    """The state of an operation the worker has just exploded: Processing, nothing counted."""
    codegen = request.code_generation
    bitmap = bytes((batches_total + 7) // 8)
    start = planned_start(request.schedule) if request.schedule else None
    waiting = start is not None and start > now
    return OperationState(
        operation_id=request.operation_id,
        sponsor_id=request.sponsor_id,
        operation_type=request.operation_type,
        operation_name=request.operation_name,
        requested_by=request.requested_by,
        priority=request.priority,
        status=OperationStatus.QUEUED if waiting else OperationStatus.PROCESSING,
        total_items=request.total_items,
        batches_total=batches_total,
        created_at=request.requested_at,
        started_at=None if waiting else now,
        last_updated=now,
        current_phase="Scheduled" if waiting else "Processing",
        status_message=(
            f"Scheduled: starts at {start.isoformat()}"
            if waiting and start
            else running_message(0, request.total_items)
        ),
        done=bitmap,
        exploded=bitmap,
        reserved=bitmap,
        released=bitmap,
        held=bitmap,
        schedule=request.schedule,
        scheduled_start=start,
        releases_end_at=releases_end(request.schedule, batches_total),
        serial_base=serial_base,
        link=request.link_send,
        job=request.job,
        job_type=request.job.job_type if request.job else None,
        retry_of=request.retry_of,
        callback_url=request.callback_url,
        progress_notifications=request.progress_notifications,
        submission_id=request.submission_id,
        request_hash=request.request_hash,
        partition=partition,
        release_window=release_window,
        auto_pause=request.auto_pause,
        throttle=_initial_throttle(request),
        channel=request.link_send.channel if request.link_send else None,
        subscription_tier_id=codegen.subscription_tier_id if codegen else None,
        code_prefix=codegen.code_prefix if codegen else None,
        version=1,
    )


def refused(
    request: OperationRequested, refusal: QuotaRefusal, *, now: datetime, partition: int
) -> OperationState:
    """The state of an operation a quota refused: Failed, nothing run, and why."""
    return OperationState(
        operation_id=request.operation_id,
        sponsor_id=request.sponsor_id,
        operation_type=request.operation_type,
        job_type=request.job.job_type if request.job else None,
        operation_name=request.operation_name,
        requested_by=request.requested_by,
        status=OperationStatus.FAILED,
        total_items=request.total_items,
        created_at=request.requested_at,
        completed_at=now,
        last_updated=now,
        current_phase="Refused",
        status_message=refusal.message(),
        stop_reason="QUOTA_EXCEEDED",
        quota_refusal=refusal,
        retry_of=request.retry_of,
        channel=request.link_send.channel if request.link_send else None,
        submission_id=request.submission_id,
        request_hash=request.request_hash,
        partition=partition,
        version=1,
    )


def _initial_throttle(request: OperationRequested) -> Throttle | None:
    if request.link_send is None:
        return None
    spread = request.schedule.spread_seconds if request.schedule else 0.0
    return Throttle(
        max_concurrency=request.link_send.max_concurrency, spread_seconds=spread or None
    )


def rethrottle(state: OperationState, change: Throttle, now: datetime) -> bool:
    """Apply a rethrottle (the values it sets); False for a finished operation or no change."""
    if state.status.is_terminal or state.link is None:
        return False
    current = state.throttle or Throttle()
    updates = change.model_dump(exclude_none=True, by_alias=False)
    if state.schedule is None:
        updates.pop("spread_seconds", None)  # nothing to spread: it was sent at once
    wanted = current.model_copy(update=updates)
    if wanted == current:
        return False
    state.throttle = wanted
    if change.spread_seconds is not None and state.schedule is not None:
        state.schedule = state.schedule.model_copy(update={"spread_seconds": change.spread_seconds})
        planned = releases_end(state.schedule, state.batches_total)
        state.releases_end_at = shifted(planned, timedelta(seconds=state.paused_seconds))
    state.last_updated = now
    state.version += 1
    return True


def outstanding(state: OperationState) -> list[int]:
    """Batches released to the items topic, not held since, and not counted yet."""
    bits = (
        int.from_bytes(state.released, "little")
        & ~int.from_bytes(state.done, "little")
        & ~int.from_bytes(state.held, "little")
    )
    return indexes_of(bits, state.batches_total)


def pause(state: OperationState, now: datetime) -> bool:
    """Stop releasing batches; False when finished, stopping or already paused."""
    if state.status.is_terminal or state.stop_reason is not None or state.paused_at is not None:
        return False
    state.paused_at = now
    state.status = OperationStatus.PAUSED
    state.current_phase = "Paused"
    state.status_message = (
        f"Paused at {state.processed_items}/{state.total_items} items; "
        "batches in flight finish, no new batch starts"
    )
    state.last_updated = now
    state.version += 1
    return True


def judge_errors(state: OperationState, sunk: BatchSunk, now: datetime) -> str | None:
    """Record a counted batch in the error window; pause the operation (and say why) when
    the rule's failure rate is reached over its latest ``window`` items (an operation
    smaller than twice its window: over half of its items, at least ``MIN_JUDGED``)."""
    rule = state.auto_pause
    if rule is None or state.status.is_terminal:
        return None
    judged = sunk.succeeded + sunk.failed
    if judged:
        window = [*state.outcome_window, (judged, sunk.failed)]
        while len(window) > 1 and sum(n for n, _ in window[1:]) >= rule.window:
            window.pop(0)
        state.outcome_window = window
    seen = sum(n for n, _ in state.outcome_window)
    failed = sum(f for _, f in state.outcome_window)
    judgeable = state.total_items - state.skipped_items
    enough = min(rule.window, max(MIN_JUDGED, judgeable // 2))
    if seen < enough or failed < rule.rate * seen or not pause(state, now):
        return None
    state.pause_reason = (
        f"AUTO_PAUSED: {failed} of the last {seen} items failed "
        f"({failed / seen:.0%}, limit {rule.rate:.0%})"
    )
    state.status_message = (
        f"Paused by itself: {failed} of the last {seen} items failed; check the errors, "
        "then resume or cancel"
    )
    return state.pause_reason


def resume(state: OperationState, now: datetime) -> bool:
    """Release batches again; False unless paused. Paused open time is not spread time."""
    if state.paused_at is None or state.status.is_terminal:
        return False
    if state.schedule is not None and now > state.schedule.start_at:
        since = max(state.paused_at, state.schedule.start_at)
        state.paused_seconds += open_seconds(state.schedule, since, now)
        state.releases_end_at = shifted(state.releases_end_at, now - state.paused_at)
    state.paused_at = None
    state.pause_reason = None
    state.outcome_window = []  # judged afresh after a resume
    started = state.started_at is not None
    state.status = OperationStatus.PROCESSING if started else OperationStatus.QUEUED
    state.current_phase = "Processing" if started else "Scheduled"
    state.status_message = (
        running_message(state.processed_items, state.total_items)
        if started
        else f"Scheduled: starts at {state.scheduled_start}"
    )
    state.last_updated = now
    state.version += 1
    return True


def shifted(moment: datetime | None, by: timedelta) -> datetime | None:
    return None if moment is None else moment + by


def is_batch_done(state: OperationState, batch_index: int) -> bool:
    return bit(state.done, batch_index)


def has_budget(spec: LinkSendSpec | None) -> TypeGuard[LinkSendSpec]:
    return spec is not None and spec.budget_limit is not None and spec.price_per_message > 0


def reserve_budget(state: OperationState, batch_index: int, wanted: int) -> int:
    """How many of a batch's ``wanted`` sends fit the budget; the same answer on a replay.

    The cost of a send is reserved before it is made, so the operation never spends more
    than ``budgetLimit`` whatever fails or is retried (an unused reservation is not given
    back: the budget errs on the safe side).
    """
    spec = state.link
    if not has_budget(spec):
        return wanted
    if bit(state.reserved, batch_index):
        return state.partial_allowed if state.partial_batch == batch_index else wanted
    assert spec.budget_limit is not None
    left = spec.budget_limit - state.cost_reserved
    allowed = max(0, min(wanted, int((left + 1e-9) // spec.price_per_message)))
    state.reserved = with_bit(state.reserved, batch_index)
    state.cost_reserved += allowed * spec.price_per_message
    if allowed < wanted:
        state.partial_batch, state.partial_allowed = batch_index, allowed
    return allowed


def apply_batch(state: OperationState, sunk: BatchSunk, *, now: datetime, max_errors: int) -> bool:
    """Count one stored batch into ``state``; ``False`` (and no change) for a duplicate."""
    if not 0 <= sunk.batch_index < state.batches_total:
        raise ValueError(
            f"batch {sunk.batch_index} outside 0..{state.batches_total - 1} "
            f"of operation {state.operation_id}"
        )
    if is_batch_done(state, sunk.batch_index) or state.status.is_terminal:
        return False
    state.done = with_bit(state.done, sunk.batch_index)
    state.batches_done += 1
    state.total_cost += sunk.cost
    state.processed_items += sunk.count
    state.successful_items += sunk.succeeded
    state.failed_items += sunk.failed
    state.skipped_items += sunk.skipped
    state.processing_ms_total += sunk.duration_ms
    if sunk.errors and len(state.errors) < max_errors:
        state.errors = [*state.errors, *sunk.errors][:max_errors]
    state.last_updated = now
    state.version += 1
    if state.batches_done == state.batches_total:
        _finish(state, now)
    elif state.status is OperationStatus.PROCESSING:
        # A paused operation keeps saying why it is paused while its last batches land.
        state.status_message = running_message(state.processed_items, state.total_items)
    return True


def final_status(state: OperationSnapshot) -> OperationStatus:
    """Cancelled when cancelled; else Completed when every item succeeded, Failed when none
    did, PartiallyCompleted between."""
    if state.stop_reason == "CANCELLED":
        return OperationStatus.CANCELLED
    if state.successful_items == state.total_items:
        return OperationStatus.COMPLETED
    if state.successful_items == 0:
        return OperationStatus.FAILED
    return OperationStatus.PARTIALLY_COMPLETED


def _finish(state: OperationState, now: datetime) -> None:
    state.status = final_status(state)
    state.completed_at = now
    state.current_phase = "Completed"
    state.status_message = (
        f"Finished: {state.successful_items} succeeded, {state.failed_items} failed, "
        f"{state.skipped_items} skipped of {state.total_items}"
    )


def request_cancel(state: OperationState, now: datetime) -> bool:
    """Mark a running operation as cancelling; False when it has already finished or stopped."""
    if state.status.is_terminal or state.stop_reason == "CANCELLED":
        return False
    state.stop_reason = "CANCELLED"
    state.cancelled_at = now
    state.paused_at = None  # held batches are released, to settle as Skipped
    state.status = OperationStatus.PROCESSING
    state.current_phase = "Cancelling"
    state.status_message = (
        f"Cancelling: no new item starts; {state.processed_items}/{state.total_items} processed"
    )
    state.last_updated = now
    state.version += 1
    return True


def running_message(processed: int, total: int) -> str:
    return f"Processing items... ({processed}/{total})"
