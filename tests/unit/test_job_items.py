"""A job operation's items as jobs of the ``002`` plan (``api.services.job_items``): finished
items from the store, the gaps pending or processing from the snapshot, filters and cursors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.services import job_items
from schemas.common import ItemStatus, OperationStatus, OperationType
from schemas.job_wire import JobProgress
from schemas.jobs import JobsPage, JobStatus
from schemas.messages import OperationRequested
from schemas.status import OperationSnapshot
from tests.unit.test_job_running import job_run

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


class Items:
    """Finished items as ``Reader.items_page`` answers them, by index."""

    def __init__(self, finished: dict[int, tuple[str, int]]) -> None:
        self.rows = {
            index: (
                index,
                f"op:{index}",
                status,
                *[None] * 4,
                False,
                0,
                NOW,
                1.0,
                None,
                0.0,
                attempts,
            )
            for index, (status, attempts) in finished.items()
        }
        self.calls = 0

    def items_page(
        self,
        sponsor_id: int,
        operation_id: str,
        *,
        after_index: int,
        limit: int,
        status: str | None = None,
    ) -> list[tuple[Any, ...]]:
        self.calls += 1
        found = [
            row
            for index, row in sorted(self.rows.items())
            if index >= after_index and (status is None or row[2] == status)
        ]
        return found[:limit]


def jobs_page(reader: Items, snap: OperationSnapshot, **options: Any) -> JobsPage:
    assert snap.job_progress is not None
    return job_items.page(reader, snap, snap.job_progress, **options)


def snapshot(
    total: int, in_flight: list[int], status: OperationStatus = OperationStatus.PROCESSING
) -> OperationSnapshot:
    return OperationSnapshot(
        operation_id="job_1",
        sponsor_id=7,
        operation_type=OperationType.JOB,
        job_type="inventory:update",
        operation_name="n",
        requested_by="u",
        status=status,
        priority=8,
        job_progress=JobProgress(batch_size=10, max_retries=3, batches_in_flight=in_flight),
        total_items=total,
        created_at=NOW,
        last_updated=NOW,
        current_phase="Processing",
        status_message="",
    )


def test_finished_items_keep_their_outcome_and_the_gaps_are_processing_or_pending() -> None:
    reader = Items({0: (ItemStatus.SUCCESS, 1), 1: (ItemStatus.FAILED, 3), 2: ("Skipped", 1)})
    page = jobs_page(reader, snapshot(40, [1]), cursor=0, limit=100, status=None)
    by_index = {job.index: job for job in page.jobs}
    assert [by_index[i].status for i in (0, 1, 2, 3, 10, 19, 20)] == [
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.PENDING,
        JobStatus.PROCESSING,
        JobStatus.PROCESSING,
        JobStatus.PENDING,
    ]
    assert (by_index[1].retry_count, by_index[1].max_retries, by_index[1].priority) == (2, 3, 8)
    assert by_index[1].id == "op:1" and by_index[3].id is None
    assert page.next_cursor is None and len(page.jobs) == 40


def test_items_never_run_of_an_ended_operation_are_cancelled() -> None:
    ended = snapshot(20, [1], OperationStatus.CANCELLED)
    page = jobs_page(Items({0: (ItemStatus.SUCCESS, 1)}), ended, cursor=0, limit=5, status=None)
    assert [job.status for job in page.jobs] == [JobStatus.COMPLETED] + [JobStatus.CANCELLED] * 4
    assert page.next_cursor == 5


@pytest.mark.parametrize(
    ("wanted", "indexes"),
    [
        (JobStatus.FAILED, [1]),
        (JobStatus.PROCESSING, list(range(10, 20))),
        (JobStatus.PENDING, [3, *range(20, 30)]),
    ],
)
def test_a_status_filter_keeps_only_its_jobs(wanted: JobStatus, indexes: list[int]) -> None:
    finished = {i: (ItemStatus.SUCCESS, 1) for i in range(10) if i not in (1, 3)}
    reader = Items(finished | {1: (ItemStatus.FAILED, 1)})
    page = jobs_page(reader, snapshot(30, [1]), cursor=0, limit=100, status=wanted)
    assert [job.index for job in page.jobs] == indexes
    assert {job.status for job in page.jobs} == {wanted}


def test_a_page_ends_at_its_limit_and_its_cursor_goes_on() -> None:
    reader = Items({})
    first = jobs_page(reader, snapshot(25, []), cursor=0, limit=10, status=None)
    assert (first.jobs[-1].index, first.next_cursor) == (9, 10)
    last = jobs_page(reader, snapshot(25, []), cursor=20, limit=10, status=None)
    assert ([j.index for j in last.jobs], last.next_cursor) == (list(range(20, 25)), None)


def test_a_search_deep_in_a_finished_operation_stops_with_a_cursor() -> None:
    total = job_items.SCAN * (job_items.MAX_STEPS + 2)
    reader = Items({i: (ItemStatus.SUCCESS, 1) for i in range(total - 1)})
    page = jobs_page(reader, snapshot(total, []), cursor=0, limit=10, status=JobStatus.PENDING)
    assert page.jobs == [] and page.next_cursor == job_items.SCAN * job_items.MAX_STEPS
    assert reader.calls == job_items.MAX_STEPS
    rest = jobs_page(
        reader, snapshot(total, []), cursor=page.next_cursor, limit=10, status=JobStatus.PENDING
    )
    assert [job.index for job in rest.jobs] == [total - 1] and rest.next_cursor is None


class Requests:
    def __init__(self, *requests: OperationRequested) -> None:
        self.requests = {(r.sponsor_id, r.operation_id): r for r in requests}

    def request(self, sponsor_id: int, operation_id: str) -> OperationRequested | None:
        return self.requests.get((sponsor_id, operation_id))


ARCHIVED = "job_" + "a" * 32


def job_request(sponsor_id: int = 7) -> OperationRequested:
    return OperationRequested(
        operation_id=ARCHIVED,
        operation_type=OperationType.JOB,
        sponsor_id=sponsor_id,
        requested_by="u",
        requested_at=NOW,
        total_items=20,
        job=job_run(batch_size=4, max_retries=2),
    )


def test_an_operation_archived_without_its_job_progress_reads_it_from_its_request() -> None:
    live = snapshot(20, [1])
    assert job_items.progress_of(Requests(), live) is live.job_progress
    archived = live.model_copy(update={"operation_id": ARCHIVED, "job_progress": None})
    progress = job_items.progress_of(Requests(job_request()), archived)
    assert progress == JobProgress(batch_size=4, max_retries=2)
    assert job_items.progress_of(Requests(job_request(sponsor_id=8)), archived) is None
    codes = archived.model_copy(update={"operation_type": OperationType.CODE_GENERATION})
    assert job_items.progress_of(Requests(job_request()), codes) is None
