"""The stall watchdog: an operation whose batches were released and are never counted is
found and driven on, whatever lost them.

A batch is *outstanding* when it went to the items topic and was neither counted nor held
since. An outstanding batch is normally somewhere in the pipeline: waiting in a topic,
being processed, or on its way from the results to the count. It is *lost* only when none
of these holds, and the watchdog proves that without guessing from time alone:

* every hop of the pipeline (operations → items → results → progress) acknowledges a
  message only after what it produced for it is on Kafka, and the worker commits no offset
  past a message still in flight;
* so once the worker has committed, on every flow topic of the operation's partition, at
  least up to the log end it saw at some moment, every message that existed then has been
  fully handled. After :data:`HOPS` such drains in a row with no change to the operation,
  nothing of it can still be on its way: its outstanding batches are lost.

The drains follow the log ends, so a partition that keeps up with its traffic passes them
within seconds however busy it is; a backlog on the partition simply delays the verdict
until the backlog is gone (the batch may be in it). A stall is acted on only after it has
also lasted ``stall_seconds``. Acting means sending a ``Redrive`` to the explode agent (or,
for a link send whose recipient chunks never all arrived, an ``OperationAbort``); both are
idempotent, so a verdict that comes twice costs a lookup, not a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from faust.types import TP

from schemas.messages import OperationAbort, Redrive
from streams.progress import OperationState, outstanding
from streams.releases import all_exploded, unexploded

log = logging.getLogger("bulkops.worker")

#: Drains needed: a message may have to cross operations, items, results and progress.
HOPS = 4


class Offsets(Protocol):
    """What the watchdog reads from the worker's consumer."""

    def log_ends(self, tps: Iterable[TP]) -> dict[TP, int] | None:
        """The log end offset the consumer last saw per partition (None: not known yet)."""
        ...

    def consumed_past(self, marks: Mapping[TP, int]) -> bool:
        """Whether everything below ``marks`` is processed and committed."""
        ...


@dataclass
class _Watch:
    fingerprint: tuple[int, ...]
    since: float
    marks: dict[TP, int] | None
    drains: int = 0


@dataclass(frozen=True)
class Verdict:
    """What to do about one stalled operation."""

    operation_id: str
    stalled_seconds: float


class StallWatchdog:
    """Per worker process: one watch per operation with outstanding work.

    ``observe`` is called every check interval for each such operation, with a
    fingerprint that changes whenever the operation moves (batches counted, released,
    held or exploded). It returns a :class:`Verdict` when the operation has not moved for
    ``stall_seconds`` and :data:`HOPS` drains of its partition have passed meanwhile.
    """

    def __init__(self, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self._watches: dict[str, _Watch] = {}

    def observe(
        self,
        operation_id: str,
        fingerprint: tuple[int, ...],
        tps: list[TP],
        offsets: Offsets,
        now: float,
    ) -> Verdict | None:
        watch = self._watches.get(operation_id)
        if watch is None or watch.fingerprint != fingerprint:
            self._watches[operation_id] = _Watch(fingerprint, now, offsets.log_ends(tps))
            return None
        if watch.marks is None:
            watch.marks = offsets.log_ends(tps)
        elif offsets.consumed_past(watch.marks):
            watch.drains += 1
            watch.marks = offsets.log_ends(tps)
        stalled = now - watch.since
        if watch.drains < HOPS or stalled < self.stall_seconds:
            return None
        self._watches[operation_id] = _Watch(fingerprint, now, offsets.log_ends(tps))
        return Verdict(operation_id, stalled)

    def forget(self, operation_id: str) -> None:
        self._watches.pop(operation_id, None)

    def retain(self, operation_ids: Iterable[str]) -> None:
        """Drop the watches of operations no longer outstanding here."""
        keep = set(operation_ids)
        for operation_id in [op for op in self._watches if op not in keep]:
            del self._watches[operation_id]

    def __len__(self) -> int:
        return len(self._watches)


@dataclass(frozen=True)
class PendingWork:
    """What of an operation should be moving: batches out and not counted, chunks awaited."""

    outstanding: list[int]
    missing: list[int]

    @classmethod
    def of(cls, state: OperationState) -> PendingWork:
        return cls(outstanding(state), [] if all_exploded(state) else unexploded(state))

    def __bool__(self) -> bool:
        return bool(self.outstanding or self.missing)

    def fingerprint(self, state: OperationState) -> tuple[int, ...]:
        """Changes whenever the operation moves."""
        return (
            state.batches_done,
            state.released_count,
            state.held_count,
            len(self.missing),
            int(state.paused_at is not None),
        )


def remedy(
    state: OperationState, work: PendingWork, verdict: Verdict, limit: int
) -> OperationAbort | Redrive:
    """The message that drives a stalled operation on: an abort for a link send whose
    recipient chunks never all arrived (they cannot be made up), else a re-drive of (at
    most ``limit`` of) its outstanding batches."""
    if work.missing:
        log.error(
            "operation %s: %d batches' recipients never arrived in %.0fs: aborting it",
            state.operation_id,
            len(work.missing),
            verdict.stalled_seconds,
        )
        return OperationAbort(
            operation_id=state.operation_id,
            sponsor_id=state.sponsor_id,
            reason=f"recipient chunks missing after {verdict.stalled_seconds:.0f}s",
            submission_id=state.submission_id,
        )
    log.error(
        "operation %s: %d batches released and not counted for %.0fs, with every topic of "
        "its partition drained: re-driving them",
        state.operation_id,
        len(work.outstanding),
        verdict.stalled_seconds,
    )
    return Redrive(
        operation_id=state.operation_id,
        sponsor_id=state.sponsor_id,
        batch_indexes=work.outstanding[:limit],
    )
