"""Dealer invitations from an Excel upload (``001_*``), run as an ordinary bulk operation.

The upload is checked as a whole (size, a real xlsx, rows within the limit), then row by
row; every problem is reported at once with its row number, as JSON or, with
``?errorReport=xlsx``, as a workbook. Code availability per tier is checked before the job
is accepted; the worker then reserves each dealer's codes atomically (per sponsor) and sends
the invitation SMS through the link-send providers. Cancel, pause, retry, live progress and
history work on the job like on any operation: its ``jobId`` is its operation id.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from fastapi.responses import Response

from api.auth import CurrentPrincipal
from api.deps import NOT_FOUND, OperationId, settings_of, store_of, view_of, visible
from api.errors import ApiError
from api.services import dealer_jobs, idempotency, workbook
from api.services.dealer_jobs import DEALER_PREFIX
from api.services.idempotency import IdempotencyKey
from api.services.presenters import status_url
from api.services.submission import (
    DRY_RUN,
    QUOTA_EXCEEDED,
    DryRun,
    already_submitted,
    dry_run_answer,
    operation_id_for,
    planned_send,
    sponsor_for_submit,
)
from core.settings import ApiSettings
from schemas.common import OperationType
from schemas.responses import (
    BulkInvitationHistory,
    BulkInvitationJob,
    BulkInvitationStatus,
    Envelope,
    ErrorBody,
    TierInventory,
)
from schemas.status import OperationSnapshot

router = APIRouter(prefix=DEALER_PREFIX, tags=["dealer-invitations"])

Tier = Literal["S", "M", "L", "XL"]


@router.get(
    "/invite-bulk/template.xlsx",
    summary="The upload template: header, an example row, a tier drop-down",
    response_class=Response,
    responses={200: {"content": {workbook.XLSX_MEDIA_TYPE: {}}}},
)
async def invitation_template(principal: CurrentPrincipal) -> Response:
    return _xlsx(workbook.template(), "dealer-invitations-template.xlsx")


@router.post(
    "/invite-bulk",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Envelope[BulkInvitationJob],
    summary="Invite dealers in bulk from an Excel file",
    responses={
        200: DRY_RUN,
        413: {"model": ErrorBody, "description": "File over the size limit"},
        429: QUOTA_EXCEEDED,
        422: {
            "model": ErrorBody,
            "description": "Not a usable workbook, invalid rows (all of them, with row "
            "numbers), or not enough codes in a tier",
            "content": {workbook.XLSX_MEDIA_TYPE: {}},
        },
    },
)
async def invite_bulk(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="An .xlsx file; row 1 is the header.")],
    invitation_type: Annotated[
        Literal["Invite", "AutoCreate"], Form(alias="invitationType")
    ] = "Invite",
    default_tier: Annotated[Tier, Form(alias="defaultTier")] = "M",
    default_code_count: Annotated[
        int, Form(alias="defaultCodeCount", ge=0, le=workbook.MAX_CODES_PER_DEALER)
    ] = 1,
    send_sms: Annotated[bool, Form(alias="sendSms")] = True,
    use_row_counts: Annotated[bool, Form(alias="useRowSpecificCounts")] = False,
    sponsor_id: Annotated[int | None, Form(alias="sponsorId", ge=1)] = None,
    error_report: Annotated[Literal["json", "xlsx"], Query(alias="errorReport")] = "json",
    idempotency_key: IdempotencyKey = None,
    dry_run: DryRun = False,
) -> Envelope[BulkInvitationJob] | Response:
    """Columns: Email, Phone, DealerName, CodeCount, Tier (row 1 is the header; empty rows
    are skipped). Each dealer gets an invitation with a unique link, ``CodeCount`` codes of
    its tier from the sponsor's inventory (``defaultCodeCount``/``defaultTier`` unless
    ``useRowSpecificCounts``), and an SMS when ``sendSms``."""
    settings = settings_of(request)
    sponsor = sponsor_for_submit(principal, sponsor_id)
    name = (file.filename or "").strip()
    data = await _upload(file, name, settings)
    parsed = await _parse(data, settings, default_tier, default_code_count, use_row_counts)
    lookups = store_of(request).inventory
    errors = await asyncio.to_thread(dealer_jobs.row_errors, lookups, sponsor, parsed)
    if errors:
        return _refuse_rows(errors, error_report)
    await asyncio.to_thread(dealer_jobs.check_codes, lookups, settings, sponsor, parsed.dealers)
    spec = dealer_jobs.invitation_spec(settings, send_sms=send_sms)
    if dry_run:
        return dry_run_answer(
            planned_send(
                request,
                principal,
                sponsor,
                OperationType.DEALER_INVITATION,
                len(parsed.dealers),
                spec,
            )
        )
    keyed = idempotency.claim(
        sponsor,
        "invite-bulk",
        idempotency_key,
        data,
        name,
        invitation_type,
        default_tier,
        default_code_count,
        send_sms,
        use_row_counts,
    )

    operation_id = operation_id_for("dealer", sponsor, idempotency_key)

    async def submit() -> Envelope[BulkInvitationJob]:
        known = idempotency.replayable(
            keyed, await already_submitted(request, keyed, operation_id, sponsor)
        )
        if known is not None:
            response.headers[idempotency.REPLAYED_HEADER] = "true"
            return _accepted(known.operation_id, known.total_items, known.created_at)
        invited, now = await dealer_jobs.queue_invitations(
            request,
            principal,
            sponsor,
            operation_id,
            file_name=name,
            dealers=parsed.dealers,
            invitation_type=invitation_type,
            spec=spec,
            request_hash=keyed.request_hash if keyed else None,
        )
        return _accepted(operation_id, invited, now)

    return await idempotency.once(
        request, keyed, status.HTTP_202_ACCEPTED, submit, operation_id=operation_id
    )


def _accepted(operation_id: str, dealers: int, created: datetime) -> Envelope[BulkInvitationJob]:
    return Envelope(
        message=f"Toplu davet işlemi başlatıldı. {dealers} dealer kuyruğa eklendi.",
        data=BulkInvitationJob(
            job_id=operation_id,
            total_dealers=dealers,
            status="Pending",
            created_date=created,
            status_check_url=f"{DEALER_PREFIX}/bulk-status/{operation_id}",
            operation_status_url=status_url(operation_id),
        ),
    )


async def _upload(file: UploadFile, name: str, settings: ApiSettings) -> bytes:
    """The uploaded workbook's bytes, once it is known to be an .xlsx within the size limit."""
    if not name.lower().endswith(".xlsx"):
        raise ApiError(
            422,
            "UNSUPPORTED_FILE_TYPE",
            "Only .xlsx workbooks are accepted (save .xls or .csv files as .xlsx)",
            {"field": "file", "fileName": name[:200]},
        )
    data = await file.read(settings.dealer_max_file_bytes + 1)
    if len(data) > settings.dealer_max_file_bytes:
        raise ApiError(
            413,
            "FILE_TOO_LARGE",
            f"The file is larger than {settings.dealer_max_file_bytes // 1_048_576} MB",
            {"maxBytes": settings.dealer_max_file_bytes},
        )
    return data


async def _parse(
    data: bytes,
    settings: ApiSettings,
    default_tier: str,
    default_code_count: int,
    use_row_counts: bool,
) -> workbook.ParsedSheet:
    """The upload as rows, or the error that says why it is not a usable workbook."""
    try:
        return await asyncio.to_thread(
            workbook.parse_sheet,
            data,
            max_rows=settings.dealer_max_rows,
            max_bytes=settings.dealer_max_file_bytes,
            default_tier=default_tier,
            default_code_count=default_code_count,
            use_row_counts=use_row_counts,
            region=settings.default_phone_region,
        )
    except workbook.WorkbookError as exc:
        code = 413 if exc.code == "FILE_TOO_LARGE" else 422
        raise ApiError(code, exc.code, str(exc), {"field": "file"}) from exc


def _refuse_rows(errors: list[workbook.RowError], form: str) -> Response:
    if form == "xlsx":
        return _xlsx(
            workbook.error_report(errors), "dealer-invitation-errors.xlsx", status_code=422
        )
    raise ApiError(
        422,
        "VALIDATION_FAILED",
        f"{len(errors)} problems in {len({e.row for e in errors})} rows; nothing was queued "
        "(ask with ?errorReport=xlsx for a workbook of them)",
        {
            "errorCount": len(errors),
            "errors": [
                {"row": e.row, "column": e.field, "error": e.error, "value": e.value}
                for e in errors
            ],
        },
    )


def _dealer_job(request: Request, principal: CurrentPrincipal, job_id: str) -> OperationSnapshot:
    snapshot = visible(request, principal, job_id)
    if snapshot.operation_type is not OperationType.DEALER_INVITATION:
        raise ApiError(404, "JOB_NOT_FOUND", f"{job_id} is not a dealer invitation job")
    return snapshot


@router.get(
    "/bulk-status/{jobId}",
    response_model=Envelope[BulkInvitationStatus],
    summary="Progress and errors of one dealer invitation job",
    responses=NOT_FOUND,
)
async def bulk_status(
    request: Request, principal: CurrentPrincipal, jobId: OperationId
) -> Envelope[BulkInvitationStatus]:
    snapshot = _dealer_job(request, principal, jobId)
    status = await asyncio.to_thread(dealer_jobs.job_status, store_of(request).inventory, snapshot)
    return Envelope(data=status)


@router.get(
    "/bulk-status/{jobId}/report.xlsx",
    summary="Every row of a job with its outcome, error and assigned codes",
    response_class=Response,
    responses={200: {"content": {workbook.XLSX_MEDIA_TYPE: {}}}, **NOT_FOUND},
)
async def bulk_report(
    request: Request, principal: CurrentPrincipal, jobId: OperationId
) -> Response:
    snapshot = _dealer_job(request, principal, jobId)
    rows = await asyncio.to_thread(
        store_of(request).inventory.dealer_report, snapshot.sponsor_id, snapshot.operation_id
    )
    body = workbook.outcome_report(
        (
            r[0],  # row
            r[1],  # email
            r[2],  # phone
            r[3],  # dealer name
            r[4],  # tier
            r[7],  # status
            r[9] or r[8] or "",  # error message, else code
            " ".join(r[5]),  # codes
            r[6],  # token
            r[10].isoformat() if r[10] else "",
        )
        for r in rows
    )
    return _xlsx(body, f"{jobId}-report.xlsx")


@router.get(
    "/bulk-history",
    response_model=Envelope[BulkInvitationHistory],
    summary="The caller's dealer invitation jobs, newest first",
)
async def bulk_history(
    request: Request,
    principal: CurrentPrincipal,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 20,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Envelope[BulkInvitationHistory]:
    store = store_of(request)
    kind = OperationType.DEALER_INVITATION.value
    rows = await asyncio.to_thread(
        store.reader.history,
        principal.sponsor_scope,
        limit=page_size,
        offset=(page - 1) * page_size,
        operation_type=kind,
    )
    total = await asyncio.to_thread(
        store.reader.history_count, principal.sponsor_scope, operation_type=kind
    )
    view = view_of(request)
    jobs = [
        await asyncio.to_thread(dealer_jobs.job_status, store.inventory, snapshot)
        for row in rows
        if (snapshot := view.get(row.operation_id)) is not None
    ]
    return Envelope(data=BulkInvitationHistory(jobs=jobs, total_count=total))


inventory_router = APIRouter(prefix="/api/v1/sponsorship/codes", tags=["dealer-invitations"])


@inventory_router.get(
    "/inventory",
    response_model=Envelope[list[TierInventory]],
    summary="The sponsor's codes per tier: available, reserved, transferred, expired",
)
async def code_inventory(
    request: Request,
    principal: CurrentPrincipal,
    sponsor_id: Annotated[int | None, Query(alias="sponsorId", ge=1)] = None,
) -> Envelope[list[TierInventory]]:
    """Codes come from ``generate-codes``; a dealer invitation reserves them and transfers
    them to the dealer when the invitation is made (or gives them back if it fails)."""
    sponsor = sponsor_for_submit(principal, sponsor_id)
    names = {tier_id: name for name, tier_id in settings_of(request).dealer_tier_ids.items()}
    rows = await asyncio.to_thread(store_of(request).inventory.inventory, sponsor)
    return Envelope(
        data=[
            TierInventory(
                tier=names.get(tier_id),
                subscription_tier_id=tier_id,
                available=available,
                reserved=reserved,
                transferred=transferred,
                expired=expired,
            )
            for tier_id, available, reserved, transferred, expired in rows
        ]
    )


def _xlsx(body: bytes, filename: str, status_code: int = 200) -> Response:
    return Response(
        content=body,
        status_code=status_code,
        media_type=workbook.XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
