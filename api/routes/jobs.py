"""Submitting job operations: a registered job type run on every item by its owning system."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import JSONResponse

from api.auth import CurrentPrincipal
from api.deps import NOT_FOUND, OperationId, store_of, visible
from api.errors import ApiError
from api.services import idempotency, job_items, jobs
from api.services.idempotency import IdempotencyKey
from api.services.presenters import API_PREFIX, metrics, status_url
from api.services.submission import (
    DRY_RUN,
    QUOTA_EXCEEDED,
    UNAVAILABLE,
    DryRun,
    accepted_again,
    already_submitted,
    checked_callback,
    dry_run_answer,
    operation_id_for,
    sponsor_for_submit,
)
from schemas.common import OperationType
from schemas.jobs import SEED_JOB_EXAMPLE, BulkJobRequest, JobsPage, JobStatus
from schemas.responses import Envelope, ErrorBody, OperationAccepted

log = logging.getLogger("bulkops.api")

router = APIRouter(prefix=API_PREFIX, tags=["bulk-operations"])


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[OperationAccepted],
    summary="Run a registered job type on every item (the work is done by its owning system)",
    responses={
        200: DRY_RUN,
        403: {"model": ErrorBody, "description": "The type is not open to this sponsor"},
        404: {"model": ErrorBody, "description": "No such type (or not visible to the caller)"},
        409: {"model": ErrorBody, "description": "The type is disabled"},
        413: {"model": ErrorBody, "description": "Body over the size limit"},
        422: {
            "model": ErrorBody,
            "description": "Bad request, or items failing the type's schema: `details.errors` "
            "names each (`field` `items.<index>.<path>`, `index`), `errorCount` counts them",
        },
        429: QUOTA_EXCEEDED,
        503: UNAVAILABLE,
    },
)
async def submit_job(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
    dry_run: DryRun = False,
    *,
    body: Annotated[
        BulkJobRequest,
        Body(openapi_examples={"tickets": {"summary": "Close tickets", "value": SEED_JOB_EXAMPLE}}),
    ],
) -> Envelope[OperationAccepted] | JSONResponse:
    """Check every item against the type's ``itemSchema`` (and ``data`` against its
    ``dataSchema``), then queue one operation whose batches go to the type's executor.

    Track it like any other operation: status, items, aggregates, cancel, pause, resume.
    """
    sponsor_id = sponsor_for_submit(principal, body.sponsor_id)
    record = jobs.usable_type(request, principal, sponsor_id, body.operation_type)
    await asyncio.to_thread(jobs.check_items, record, body)
    run = jobs.job_run(record, body)
    if dry_run:
        return dry_run_answer(jobs.plan(request, principal, sponsor_id, body, run))
    keyed = idempotency.claim(sponsor_id, "jobs", idempotency_key, body)
    operation_id = operation_id_for("job", sponsor_id, idempotency_key)

    async def submit() -> Envelope[OperationAccepted]:
        known = idempotency.replayable(
            keyed, await already_submitted(request, keyed, operation_id, sponsor_id)
        )
        if known is not None:
            return accepted_again(response, known)
        callback = await checked_callback(request, body.processing.callback_url)
        now = datetime.now(UTC)
        snapshot = await jobs.queue_job(
            request,
            principal,
            sponsor_id=sponsor_id,
            operation_id=operation_id,
            body=body,
            run=run,
            now=now,
            callback_url=callback,
            request_hash=keyed.request_hash if keyed else None,
        )
        log.info(
            "operation %s: queued %d %s jobs (type version %d) for sponsor %d by %s",
            operation_id,
            len(body.items),
            run.job_type,
            run.type_version,
            sponsor_id,
            principal.subject,
        )
        return Envelope(
            data=OperationAccepted(
                operation_id=operation_id,
                operation_type=OperationType.JOB,
                job_type=run.job_type,
                status=snapshot.status,
                total_items=len(body.items),
                created_at=now,
                scheduled_start=snapshot.scheduled_start,
                status_url=status_url(operation_id),
                metrics=metrics(snapshot, now),
            )
        )

    return await idempotency.once(
        request, keyed, status.HTTP_202_ACCEPTED, submit, operation_id=operation_id
    )


@router.get(
    "/jobs/{operationId}",
    response_model=Envelope[JobsPage],
    summary="A job operation's items as jobs: pending, processing, completed, failed, cancelled",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "The operation is not a BulkJob"},
    },
)
def get_jobs(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
    job_status: Annotated[JobStatus | None, Query(alias="status")] = None,
    cursor: Annotated[int, Query(ge=0, le=2**32 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Envelope[JobsPage]:
    """Every item, finished or not, in the shape of the ``002`` queue plan's ``BaseJob``:
    ``status``, ``retryCount``, ``maxRetries``, ``error``, ``priority``, ``processedAt``.

    Unfinished items are ``processing`` while their batch is with the owning system and
    ``pending`` before; their ``id`` shows once they are processed. Page with ``cursor``.
    """
    snapshot = visible(request, principal, operationId)
    store = store_of(request)
    progress = job_items.progress_of(store.state, snapshot)
    if progress is None:
        raise ApiError(
            409,
            "NOT_A_JOB_OPERATION",
            f"{operationId} is a {snapshot.operation_type.value}: read its items at "
            f"/items/{operationId}",
        )
    page = job_items.page(
        store.reader,
        snapshot,
        progress,
        cursor=cursor,
        limit=limit,
        status=job_status,
    )
    return Envelope(data=page)
