"""Release control: which of an operation's batches may go to the items topic now, and the
record of what went and what is held back (paused, not due yet, or beyond the release window).

Pure functions over :class:`streams.progress.OperationState`, like the counting next door.
"""

from __future__ import annotations

from datetime import datetime

from core.schedule import release_limit
from schemas.common import OperationStatus
from streams.bitmaps import bit, indexes_of, set_bits, with_bit, without_bit
from streams.progress import OperationState, running_message


def all_exploded(state: OperationState) -> bool:
    """Whether every item batch exists: always for codes, once all chunks came otherwise."""
    if state.chunk_batch_size is None:
        return True
    return int.from_bytes(state.exploded, "little").bit_count() >= state.batches_total


def unexploded(state: OperationState) -> list[int]:
    """Batches of a chunked operation whose chunk has not arrived."""
    if state.chunk_batch_size is None:
        return []
    everything = (1 << state.batches_total) - 1
    return indexes_of(everything & ~int.from_bytes(state.exploded, "little"), state.batches_total)


def release_quota(state: OperationState, now: datetime) -> int:
    """How many more batches may go to the items topic now.

    A stopped operation releases everything (its batches are then skipped, so they settle
    at once); a paused one releases nothing, nor does a link send whose recipient chunks
    have not all arrived (a submission the API could not finish must not half run);
    otherwise the schedule decides, within the operation's release window.
    """
    if state.stop_reason is not None:
        return state.batches_total
    if state.paused_at is not None or not all_exploded(state):
        return 0
    limit = release_limit(state.schedule, state.batches_total, now, state.paused_seconds)
    quota = max(0, limit - state.released_count)
    return min(quota, window_room(state)) if state.release_window else quota


def window_room(state: OperationState) -> int:
    """How many more batches the release window takes: released, not yet counted fill it."""
    return max(0, state.release_window - (state.released_count - state.batches_done))


def wants_refill(state: OperationState, now: datetime) -> bool:
    """A windowed operation has held batches and its window is a quarter empty: time to
    release more (not for every counted batch, which would cost a message each)."""
    return (
        state.release_window > 0
        and state.held_count > 0
        and release_quota(state, now) >= max(1, state.release_window // 4)
    )


def due_batches(state: OperationState, now: datetime, limit: int) -> list[int]:
    """Held batches that may go now, oldest first, at most ``limit``.

    Batches held on their way to a send (the operation was paused) go again as soon as it
    resumes; batches never released wait for the schedule's quota.
    """
    if state.held_count == 0 or (state.paused_at is not None and state.stop_reason is None):
        return []
    quota = release_quota(state, now)
    if quota == 0 and not _overlap(state.held, state.released):
        return []  # a full window or a schedule not due: skip the walk over the held bits
    due: list[int] = []
    for index in set_bits(state.held, state.batches_total):
        if bit(state.released, index):
            due.append(index)
        elif quota > 0:
            quota -= 1
            due.append(index)
        if len(due) == limit:
            break
    return due


def _overlap(a: bytes, b: bytes) -> bool:
    return bool(int.from_bytes(a, "little") & int.from_bytes(b, "little"))


def mark_released(state: OperationState, index: int, now: datetime) -> None:
    """Record that batch ``index`` went to the items topic (once; replays change nothing)."""
    if bit(state.held, index):
        state.held = without_bit(state.held, index)
        state.held_count -= 1
    if not bit(state.released, index):
        state.released = with_bit(state.released, index)
        state.released_count += 1
    if state.status is OperationStatus.QUEUED:
        state.status = OperationStatus.PROCESSING
        state.started_at = now
        state.current_phase = "Processing"
        state.status_message = running_message(state.processed_items, state.total_items)
        state.version += 1
        state.last_updated = now


def mark_held(state: OperationState, index: int) -> None:
    if not bit(state.held, index):
        state.held = with_bit(state.held, index)
        state.held_count += 1
