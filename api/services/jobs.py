"""Submitting a job operation: the type's checks, every item against its schema (all errors
at once), and the items queued in chunks behind the operation's header.

The type's registration is copied into the operation (:class:`~schemas.job_wire.JobRun`):
the worker never looks a type up, and a type changed or disabled later leaves operations
already submitted as they were.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
from fastapi import Request

from api.auth import Principal
from api.deps import settings_of
from api.errors import ApiError, validation_error
from api.services import quotas
from api.services.chunks import BatchTooLarge, encode_chunks
from api.services.job_types import visible_record
from api.services.submission import (
    CHUNK_BYTES,
    auto_pause_rule,
    new_submission_id,
    queue,
    queued_snapshot,
)
from core.schedule import planned_start, releases_end
from core.schedule import resolve as resolve_schedule
from core.settings import ApiSettings
from schemas.common import OperationType
from schemas.job_wire import JobItem, JobProgress, JobRun
from schemas.jobs import BulkJobRequest, JobTypeRecord
from schemas.messages import OperationRequested
from schemas.responses import DryRunResult
from schemas.status import OperationSnapshot

#: Item errors reported in one answer (all are counted).
MAX_REPORTED_ERRORS = 100


def usable_type(
    request: Request, principal: Principal, sponsor_id: int, name: str
) -> JobTypeRecord:
    """The type ``sponsor_id``'s operation may run: 404 for a type the caller cannot see (a
    sponsor sees only enabled types open to it), 409 disabled, 403 not open to the sponsor."""
    record = visible_record(request, principal, name)
    if not record.enabled:
        raise ApiError(409, "JOB_TYPE_DISABLED", f"Job type {name} is disabled")
    if not record.spec.may_use(sponsor_id):
        raise ApiError(
            403, "JOB_TYPE_FORBIDDEN", f"Sponsor {sponsor_id} may not run job type {name}"
        )
    return record


def check_items(record: JobTypeRecord, body: BulkJobRequest) -> None:
    """``data`` and every item against the type's schemas (blocking: call it off the event
    loop); one 422 naming the first :data:`MAX_REPORTED_ERRORS` bad fields, counting all."""
    spec = record.spec
    found = _SchemaErrors()
    found.check(spec.data_schema, [body.data], "data")
    found.check(spec.item_schema, body.items, "items")
    if found.count:
        first = found.shown[0]
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            f"{found.count} schema errors; first: {first['field']}: {first['message']}",
            {"errors": found.shown, "errorCount": found.count},
        )


class _SchemaErrors:
    """Every schema error counted, the first :data:`MAX_REPORTED_ERRORS` described (a million
    bad items must not become a million error objects)."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[dict[str, Any]] = []

    def check(self, schema: dict[str, Any], values: list[Any], field: str) -> None:
        # Formats (email, uri, date-time, …) are checked, not only annotations.
        validator = jsonschema_rs.validator_for(schema, offline=True, validate_formats=True)
        for index, value in enumerate(values):
            if validator.is_valid(value):
                continue
            for error in validator.iter_errors(value):
                self.count += 1
                if len(self.shown) < MAX_REPORTED_ERRORS:
                    self.shown.append(_described(error, field, index))


def _described(error: Any, field: str, index: int) -> dict[str, Any]:
    path = ".".join(str(p) for p in error.instance_path)
    where = f"{field}.{index}" if field == "items" else field
    return {
        "field": f"{where}.{path}" if path else where,
        "message": error.message[:300],
        "type": "schema",
        **({"index": index} if field == "items" else {}),
    }


def job_run(record: JobTypeRecord, body: BulkJobRequest) -> JobRun:
    """The type as the operation runs it, with the caller's narrower batch size and bound."""
    run = record.run(body.data)
    wanted = body.processing
    return run.model_copy(
        update={
            "batch_size": wanted.batch_size or run.batch_size,
            "max_concurrency": min(
                wanted.max_concurrency or run.max_concurrency, run.max_concurrency
            ),
        }
    )


def plan(
    request: Request, principal: Principal, sponsor_id: int, body: BulkJobRequest, run: JobRun
) -> DryRunResult:
    """A dry run: the checks a submit makes (every item already checked), and its plan."""
    total = len(body.items)
    check_size(settings_of(request), total, run.batch_size)
    now = datetime.now(UTC)
    schedule = resolve_schedule(body.scheduling, now)
    batches = -(-total // run.batch_size)
    return DryRunResult(
        operation_type=OperationType.JOB,
        total_items=total,
        valid_items=total,
        batches=batches,
        estimated_cost=0.0,
        quota=quotas.estimate(request, principal, sponsor_id, total),
        planned_start=(planned_start(schedule) if schedule is not None else now) or now,
        releases_end_at=releases_end(schedule, batches) if schedule is not None else None,
    )


def check_size(settings: ApiSettings, total: int, batch_size: int) -> None:
    """The operation's size limits (422 on ``items`` or ``processing.batchSize``)."""
    violation = settings.size_violation(total, batch_size)
    if violation is not None:
        field, reason = violation
        raise validation_error("items" if field == "quantity" else field, reason)


async def queue_job(
    request: Request,
    principal: Principal,
    *,
    sponsor_id: int,
    operation_id: str,
    body: BulkJobRequest,
    run: JobRun,
    now: datetime,
    callback_url: str | None,
    request_hash: str | None,
    item_ids: list[str] | None = None,
    retry_of: str | None = None,
) -> OperationSnapshot:
    """The operation's header and its item chunks, queued in order (or 503). Items are
    ``<operationId>:<index>`` unless ``item_ids`` names them (each unique in the system)."""
    total = len(body.items)
    check_size(settings_of(request), total, run.batch_size)
    ids = item_ids or [f"{operation_id}:{i}" for i in range(total)]
    items = [
        JobItem.model_construct(index=i, item_id=ids[i], payload=payload)
        for i, payload in enumerate(body.items)
    ]
    submission_id = new_submission_id()
    try:
        chunks = encode_chunks(
            kind="job_items",
            operation_id=operation_id,
            sponsor_id=sponsor_id,
            items=items,
            batch_size=run.batch_size,
            max_bytes=CHUNK_BYTES,
            submission_id=submission_id,
        )
    except BatchTooLarge as exc:
        raise validation_error("processing.batchSize", str(exc)) from exc
    schedule = resolve_schedule(body.scheduling, now)
    header = OperationRequested(
        operation_id=operation_id,
        operation_type=OperationType.JOB,
        sponsor_id=sponsor_id,
        requested_by=principal.subject,
        requested_at=now,
        total_items=total,
        operation_name=body.operation_name,
        callback_url=callback_url,
        progress_notifications=body.processing.send_progress_notifications,
        job=run,
        priority=body.priority,
        retry_of=retry_of,
        schedule=schedule,
        submission_id=submission_id,
        quota_exempt=quotas.exempt(request, principal),
        request_hash=request_hash,
        auto_pause=auto_pause_rule(body.processing),
        metadata=body.metadata,
    )
    snapshot = queued_snapshot(
        operation_id,
        sponsor_id,
        principal,
        OperationType.JOB,
        body.operation_name,
        total,
        now,
        body.priority,
    )
    snapshot.job_type = run.job_type
    snapshot.job_progress = JobProgress(batch_size=run.batch_size, max_retries=run.max_retries)
    snapshot.request_hash = request_hash
    snapshot.retry_of = retry_of
    if schedule is not None:
        snapshot.scheduled_start = planned_start(schedule)
        snapshot.releases_end_at = releases_end(schedule, -(-total // run.batch_size))
    return await queue(
        request,
        snapshot,
        [header.model_dump_json().encode(), *chunks],
        submission_id=submission_id,
        admission=quotas.admission_wanted(request, principal, sponsor_id, total),
    )


async def queue_retry(
    request: Request,
    principal: Principal,
    *,
    original: OperationRequested,
    operation_id: str,
    items: list[JobItem],
    request_hash: str | None,
) -> OperationSnapshot:
    """A job operation's retryable failures again, as a new operation linked to it: the same
    type version and data, each item with its original id."""
    run = original.job
    assert run is not None
    body = BulkJobRequest(
        operation_type=run.job_type,
        operation_name=f"Retry of {original.operation_name}"[:200],
        items=[item.payload for item in items],
        data=run.data,
        priority=original.priority,
        metadata=original.metadata,
    )
    return await queue_job(
        request,
        principal,
        sponsor_id=original.sponsor_id,
        operation_id=operation_id,
        body=body,
        run=run,
        now=datetime.now(UTC),
        callback_url=original.callback_url,
        request_hash=request_hash,
        item_ids=[item.item_id for item in items],
        retry_of=original.operation_id,
    )
