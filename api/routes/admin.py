"""``/api/v1/admin``: what only an Admin may do across sponsors: read-only SQL, erasure,
the overview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from api.auth import CurrentPrincipal, Principal
from api.errors import ApiError
from api.services import analyst, erasure, overview
from schemas.analytics import ErasureRequest, ErasureResult, ResultFormat, SqlQuery, SqlResult
from schemas.responses import AdminOverview, Envelope, ErrorBody

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

_EXAMPLES = {
    "per_channel": {
        "summary": "Sends and success rate per channel",
        "value": {
            "sql": "SELECT channel, count() AS sends, countIf(delivered) AS delivered "
            "FROM v1_sends GROUP BY channel ORDER BY channel",
            "format": "json",
        },
    },
    "csv": {
        "summary": "A sponsor's operations as CSV",
        "value": {"sql": "SELECT * FROM v1_operations WHERE sponsor_id = 7", "format": "csv"},
    },
}
_MEDIA = {
    ResultFormat.CSV: "text/csv; charset=utf-8",
    ResultFormat.PARQUET: "application/vnd.apache.parquet",
}


@router.post(
    "/sql",
    response_model=Envelope[SqlResult],
    summary="Run a read-only SQL query on the analytics store (Admin)",
    responses={
        200: {
            "content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
            "description": "JSON in the envelope; CSV or Parquet as a file",
        },
        403: {"model": ErrorBody},
        422: {
            "model": ErrorBody,
            "description": "SQL_NOT_READ_ONLY, SQL_INVALID, SQL_LIMIT_EXCEEDED",
        },
    },
)
async def run_sql(
    request: Request,
    principal: CurrentPrincipal,
    query: Annotated[SqlQuery, Body(openapi_examples=_EXAMPLES)],
) -> Any:
    """ClickHouse runs it with ``readonly = 1`` (no writes, DDL, table functions or settings),
    ``BULKOPS_ANALYTICS_MAX_SECONDS`` and ``BULKOPS_ANALYTICS_MAX_ROWS``; one query at a time
    per API process. Query the ``v1_*`` views (docs/analytics.md)."""
    _admin(principal, "Only an Admin runs SQL; sponsors export their operations")
    raw = await analyst.run(request, query.sql, query.format)
    if query.format is ResultFormat.JSON:
        return Envelope(data=analyst.json_result(raw))
    return Response(
        raw,
        media_type=_MEDIA[query.format],
        headers={"Content-Disposition": f'attachment; filename="query.{query.format.value}"'},
    )


@router.post(
    "/erasure",
    response_model=Envelope[ErasureResult],
    summary="Erase one person's phone number or e-mail address everywhere (Admin)",
    responses={403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def erase_address(
    request: Request, principal: CurrentPrincipal, body: ErasureRequest
) -> Envelope[ErasureResult]:
    """For a right-to-erasure request: every stored row with the address (recipients, dealer
    invitations, item batches, requests, stored answers) is deleted. Retries of the
    operations it was in skip that person. The log keeps a hash of the address, never the
    address."""
    _admin(principal, "Only an Admin erases personal data")
    return Envelope(data=await erasure.erase(request, body.address, by=principal.subject))


@router.get(
    "/overview",
    response_model=Envelope[AdminOverview],
    summary="The worker's consumer lag, dead letters and live operations by sponsor (Admin)",
    responses={403: {"model": ErrorBody}},
)
async def admin_overview(request: Request, principal: CurrentPrincipal) -> Envelope[AdminOverview]:
    """Read from the broker (lag, dead-letter topic size) and the live status view; the
    dashboard's admin page polls it."""
    _admin(principal, "Only an Admin sees every sponsor's operations")
    return Envelope(data=await overview.build(request))


def _admin(principal: Principal, message: str) -> None:
    if not principal.is_admin:
        raise ApiError(403, "FORBIDDEN", message)
