"""A job operation's items as the jobs of the ``002`` queue plan: every item, finished or not,
with its status in the plan's words and its retry count, retry limit, priority and error.

Finished items come from ClickHouse's ``items``; the others are the gaps between them, which
are ``processing`` while their batch is with the owning system (the snapshot's
``jobProgress.batchesInFlight``) and ``pending`` before that. An operation that ended with
items never run (cancelled, stopped) shows them ``cancelled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from schemas.common import ItemStatus, OperationType
from schemas.job_wire import JobProgress
from schemas.jobs import JobsPage, JobStatus, JobView
from schemas.messages import OperationRequested
from schemas.status import OperationSnapshot

FINISHED: dict[str, JobStatus] = {
    ItemStatus.SUCCESS: JobStatus.COMPLETED,
    ItemStatus.FAILED: JobStatus.FAILED,
    ItemStatus.SKIPPED: JobStatus.CANCELLED,
}
STORED_AS: dict[JobStatus, str] = {job: str(item) for item, job in FINISHED.items()}
#: Item indexes read from ClickHouse per step, and the steps one page may take: a page of
#: ``pending`` jobs deep in a mostly finished operation ends early with a cursor to go on.
SCAN = 5000
MAX_STEPS = 20


class RequestReader(Protocol):
    """:meth:`analytics.worker_state.WorkerState.request`: an operation's stored request."""

    def request(self, sponsor_id: int, operation_id: str) -> OperationRequested | None: ...


def progress_of(requests: RequestReader, snapshot: OperationSnapshot) -> JobProgress | None:
    """The snapshot's ``jobProgress``; for a job operation archived before snapshots carried
    it, the batch size and retry limit of its stored request (nothing was in flight: it ended).
    None for an operation that is not a job."""
    if snapshot.operation_type is not OperationType.JOB:
        return None
    if snapshot.job_progress is not None:
        return snapshot.job_progress
    request = requests.request(snapshot.sponsor_id, snapshot.operation_id)
    if request is None or request.job is None:
        return None
    return JobProgress(batch_size=request.job.batch_size, max_retries=request.job.max_retries)


class ItemsReader(Protocol):
    """:meth:`analytics.reader.Reader.items_page`: finished items in index order."""

    def items_page(
        self,
        sponsor_id: int,
        operation_id: str,
        *,
        after_index: int,
        limit: int,
        status: str | None = None,
    ) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class _Operation:
    snapshot: OperationSnapshot
    progress: JobProgress

    def unfinished(self, index: int) -> JobStatus:
        if self.snapshot.status.is_terminal:
            return JobStatus.CANCELLED
        in_flight = index // self.progress.batch_size in self.progress.batches_in_flight
        return JobStatus.PROCESSING if in_flight else JobStatus.PENDING

    def job(self, index: int, status: JobStatus, row: tuple[Any, ...] | None = None) -> JobView:
        snapshot = self.snapshot
        view = JobView(
            id=None,
            index=index,
            type=snapshot.job_type or "",
            operation_id=snapshot.operation_id,
            sponsor_id=snapshot.sponsor_id,
            status=status,
            retry_count=0,
            max_retries=self.progress.max_retries,
            priority=snapshot.priority,
            created_at=snapshot.created_at,
        )
        if row is not None:  # an items_page row
            view.id, view.result_data, view.error_code, view.error = row[1], row[3], row[4], row[5]
            view.processed_at = row[9]
            view.retry_count = max(int(row[13]) - 1, 0)
        return view


def page(
    reader: ItemsReader,
    snapshot: OperationSnapshot,
    progress: JobProgress,
    *,
    cursor: int,
    limit: int,
    status: JobStatus | None,
) -> JobsPage:
    """Jobs from item ``cursor`` on, at most ``limit`` of them, only ``status`` if given."""
    assert snapshot.job_type is not None
    operation = _Operation(snapshot, progress)
    if status in STORED_AS:
        jobs, next_cursor = _finished(reader, operation, cursor, limit, status)
    else:
        jobs, next_cursor = _scan(reader, operation, cursor, limit, status)
    return JobsPage(
        operation_id=snapshot.operation_id,
        job_type=snapshot.job_type,
        jobs=jobs,
        next_cursor=next_cursor,
    )


def _finished(
    reader: ItemsReader, operation: _Operation, cursor: int, limit: int, status: JobStatus
) -> tuple[list[JobView], int | None]:
    snapshot = operation.snapshot
    rows = reader.items_page(
        snapshot.sponsor_id,
        snapshot.operation_id,
        after_index=cursor,
        limit=limit,
        status=STORED_AS[status],
    )
    jobs = [operation.job(row[0], status, row) for row in rows]
    return jobs, (jobs[-1].index + 1 if len(jobs) == limit else None)


def _scan(
    reader: ItemsReader,
    operation: _Operation,
    cursor: int,
    limit: int,
    status: JobStatus | None,
) -> tuple[list[JobView], int | None]:
    """Walk the item indexes from ``cursor``, finished ones from ClickHouse, the gaps from
    the snapshot, keeping those of ``status`` (all if None)."""
    snapshot = operation.snapshot
    total = snapshot.total_items
    jobs: list[JobView] = []
    start = cursor
    for _ in range(MAX_STEPS):
        if start >= total:
            return jobs, None
        end = min(start + SCAN, total)
        rows = {
            row[0]: row
            for row in reader.items_page(
                snapshot.sponsor_id, snapshot.operation_id, after_index=start, limit=end - start
            )
        }
        for index in range(start, end):
            row = rows.get(index)
            found = FINISHED[row[2]] if row is not None else operation.unfinished(index)
            if status is None or found is status:
                jobs.append(operation.job(index, found, row))
                if len(jobs) == limit:
                    return jobs, (index + 1 if index + 1 < total else None)
        start = end
    return jobs, (start if start < total else None)
