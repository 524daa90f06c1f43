"""Quotas: a caller's limits and use; an Admin's changes for every sponsor or for one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from api.auth import CurrentPrincipal, Principal
from api.errors import ApiError
from api.services import quotas
from api.services.presenters import API_PREFIX
from schemas.responses import Envelope, QuotaChange, QuotaOverview

router = APIRouter(prefix=f"{API_PREFIX}/quotas", tags=["quotas"])

_SEED_LIMITS = {
    "bulkOperationLimits": {
        "maxConcurrentOperations": 3,
        "maxItemsPerOperation": 5000,
        "maxOperationsPerDay": 10,
        "maxItemsPerDay": 50000,
    }
}
_CHANGE_EXAMPLES = {
    "seed": {"summary": "The seed's limits", "value": _SEED_LIMITS},
    "one": {
        "summary": "Raise one limit, make another unlimited",
        "value": {"bulkOperationLimits": {"maxConcurrentOperations": 10, "maxItemsPerDay": None}},
    },
    "reset": {"summary": "Back to the defaults", "value": {"bulkOperationLimits": {}}},
}
_CHANGED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": Envelope[QuotaOverview],
        "description": "Sent, but the worker has not applied it yet (it will)",
    }
}
SponsorId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The sponsor whose limits change")]


def _admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "FORBIDDEN", "Only an Admin changes quotas")


@router.get(
    "",
    response_model=Envelope[QuotaOverview],
    summary="Your quotas: limits and what you use now",
)
def get_quotas(
    request: Request,
    principal: CurrentPrincipal,
    sponsor_id: Annotated[
        int | None,
        Query(
            alias="sponsorId",
            ge=1,
            le=2**63 - 1,
            description="Admins: the sponsor to look at (without it: the defaults).",
        ),
    ] = None,
) -> Envelope[QuotaOverview]:
    """A sponsor sees its own limits and use; an Admin names a sponsor, or sees the defaults.

    Days are UTC days. Operations not yet finished (queued, scheduled, paused, running) count
    as concurrent; daily counts include every operation accepted today.
    """
    if not principal.is_admin:
        if sponsor_id is not None and sponsor_id != principal.sponsor_id:
            raise ApiError(403, "FORBIDDEN", "sponsorId does not match the sponsor of your token")
        sponsor_id = principal.sponsor_id
    return Envelope(data=quotas.overview(request, sponsor_id))


async def _changed(
    request: Request,
    response: Response,
    principal: Principal,
    sponsor_id: int | None,
    change: QuotaChange,
) -> Envelope[QuotaOverview]:
    _admin(principal)
    limits = change.bulk_operation_limits
    cap = request.app.state.settings.max_items_per_operation
    if (limits.max_items_per_operation or 0) > cap:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            f"bulkOperationLimits.maxItemsPerOperation: at most {cap} (the system's limit)",
            {
                "errors": [
                    {
                        "field": "bulkOperationLimits.maxItemsPerOperation",
                        "message": f"at most {cap}",
                        "type": "value_error",
                    }
                ]
            },
        )
    applied = await quotas.change(request, principal, sponsor_id, limits)
    if not applied:
        response.status_code = status.HTTP_202_ACCEPTED
        return Envelope(
            data=quotas.overview(request, sponsor_id),
            message="Sent; the worker applies it shortly (these are the limits before it)",
        )
    return Envelope(data=quotas.overview(request, sponsor_id), message="Quotas changed")


@router.put(
    "/defaults",
    response_model=Envelope[QuotaOverview],
    responses=_CHANGED,
    summary="Admin: change the default quotas of every sponsor",
)
async def put_default_quotas(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    change: Annotated[QuotaChange, Body(openapi_examples=_CHANGE_EXAMPLES)],
) -> Envelope[QuotaOverview]:
    """The limits given replace the settings' defaults (``BULKOPS_QUOTA_*``) for every sponsor
    without its own; the ones left out go back to the settings. Durable across restarts."""
    return await _changed(request, response, principal, None, change)


@router.put(
    "/{sponsorId}",
    response_model=Envelope[QuotaOverview],
    responses=_CHANGED,
    summary="Admin: change one sponsor's quotas",
)
async def put_sponsor_quotas(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    sponsorId: SponsorId,
    change: Annotated[QuotaChange, Body(openapi_examples=_CHANGE_EXAMPLES)],
) -> Envelope[QuotaOverview]:
    """The limits given apply to this sponsor only; the ones left out follow the defaults.
    Applied in order with the sponsor's submissions, so exact from the next one on."""
    return await _changed(request, response, principal, sponsorId, change)
