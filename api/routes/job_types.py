"""Job types: an Admin registers what other systems execute; callers list what they may use."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response, status

from api.auth import CurrentPrincipal
from api.deps import settings_of
from api.services import job_types
from api.services.presenters import API_PREFIX
from core.topics import Topics
from core.webhooks import job_type_secret
from schemas.jobs import (
    JOB_TYPE_NAME,
    SEED_JOB_TYPE_EXAMPLE,
    JobTypeList,
    JobTypeOut,
    JobTypeRecord,
    JobTypeSpec,
)
from schemas.responses import Envelope, ErrorBody

router = APIRouter(prefix=f"{API_PREFIX}/job-types", tags=["job types"])

JobTypeName = Annotated[
    str,
    Path(pattern=JOB_TYPE_NAME, description="`system:action`", examples=["ticket:update_status"]),
]
_EXAMPLES = {
    "kafka": {
        "summary": "Tickets, executed by the ticket system's Kafka worker",
        "value": SEED_JOB_TYPE_EXAMPLE,
    },
    "http": {
        "summary": "Listings, executed by an internal HTTP handler",
        "value": {
            "name": "listing:update",
            "executor": "http",
            "handlerUrl": "http://listings.internal:8080/bulk/update",
            "allowPrivateHandler": True,
            "itemSchema": {"type": "object", "required": ["listingId"]},
            "timeoutSeconds": 30,
            "maxRetries": 5,
            "rateLimitPerSecond": 200,
            "allowedSponsors": [7, 42],
        },
    },
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such type"}
}
_SpecBody = Annotated[JobTypeSpec, Body(openapi_examples=_EXAMPLES)]


def _out(request: Request, record: JobTypeRecord) -> JobTypeOut:
    return job_types.present(Topics(settings_of(request).topic_prefix), record)


@router.post(
    "",
    response_model=Envelope[JobTypeOut],
    status_code=status.HTTP_201_CREATED,
    summary="Admin: register a job type",
    responses={
        200: {"model": Envelope[JobTypeOut], "description": "The same registration again"},
        409: {"model": ErrorBody, "description": "The name is taken by another spec"},
    },
)
async def register_job_type(
    request: Request, response: Response, principal: CurrentPrincipal, spec: _SpecBody
) -> Envelope[JobTypeOut]:
    """Durable at once (a compacted topic), listed by every API instance. Sending the same
    registration again changes nothing (200); another spec under the same name is a 409."""
    record, created = await job_types.register(request, principal, spec)
    if not created:
        response.status_code = status.HTTP_200_OK
    message = "Job type registered" if created else "Job type already registered"
    return Envelope(data=_out(request, record), message=message)


@router.get("", response_model=Envelope[JobTypeList], summary="Job types you may use")
def list_job_types(request: Request, principal: CurrentPrincipal) -> Envelope[JobTypeList]:
    """An Admin sees every type, disabled ones too; a sponsor the enabled types open to it."""
    return Envelope(data=job_types.listing(request, principal))


@router.get(
    "/{name}", response_model=Envelope[JobTypeOut], summary="One job type", responses=_NOT_FOUND
)
def get_job_type(
    request: Request, principal: CurrentPrincipal, name: JobTypeName
) -> Envelope[JobTypeOut]:
    return Envelope(data=_out(request, job_types.visible_record(request, principal, name)))


@router.put(
    "/{name}",
    response_model=Envelope[JobTypeOut],
    summary="Admin: change a job type's spec",
    responses=_NOT_FOUND,
)
async def replace_job_type(
    request: Request, principal: CurrentPrincipal, name: JobTypeName, spec: _SpecBody
) -> Envelope[JobTypeOut]:
    """The whole spec is replaced and the version goes up; operations already submitted keep
    the spec they were submitted with."""
    record = await job_types.replace(request, principal, name, spec)
    return Envelope(data=_out(request, record), message="Job type changed")


@router.post(
    "/{name}/disable",
    response_model=Envelope[JobTypeOut],
    summary="Admin: disable a job type",
    responses=_NOT_FOUND,
)
async def disable_job_type(
    request: Request, principal: CurrentPrincipal, name: JobTypeName
) -> Envelope[JobTypeOut]:
    """New jobs of the type are refused; running operations finish. Types are never deleted."""
    record = await job_types.set_enabled(request, principal, name, enabled=False)
    return Envelope(data=_out(request, record), message="Job type disabled")


@router.post(
    "/{name}/enable",
    response_model=Envelope[JobTypeOut],
    summary="Admin: enable a job type again",
    responses=_NOT_FOUND,
)
async def enable_job_type(
    request: Request, principal: CurrentPrincipal, name: JobTypeName
) -> Envelope[JobTypeOut]:
    record = await job_types.set_enabled(request, principal, name, enabled=True)
    return Envelope(data=_out(request, record), message="Job type enabled")


@router.get(
    "/{name}/signing-secret",
    summary="Admin: the secret a type's HTTP handler verifies Bulkops' requests with",
    responses=_NOT_FOUND,
)
def job_type_signing_secret(
    request: Request, principal: CurrentPrincipal, name: JobTypeName
) -> dict[str, Any]:
    """The handler checks ``X-Bulkops-Signature`` as ``sha256=HMAC_SHA256(secret, timestamp +
    "." + body)`` with ``timestamp`` from ``X-Bulkops-Timestamp`` (refusing stale ones), and
    may deduplicate attempts on ``Idempotency-Key``. One secret per type."""
    job_types.admin_only(principal)
    record = job_types.visible_record(request, principal, name)
    secret = job_type_secret(settings_of(request).webhook_secret, record.spec.name)
    return {
        "success": True,
        "data": {
            "jobType": record.spec.name,
            "secret": secret,
            "algorithm": "HMAC-SHA256",
            "signedPayload": "{X-Bulkops-Timestamp}.{raw body}",
            "headers": [
                "X-Bulkops-Signature",
                "X-Bulkops-Timestamp",
                "X-Bulkops-Job-Type",
                "Idempotency-Key",
            ],
        },
    }
