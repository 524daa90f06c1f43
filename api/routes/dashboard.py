"""``/templates`` and ``/statistics``: a sponsor's templates and dashboard figures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request, status

from api.auth import CurrentPrincipal
from api.deps import store_of
from api.errors import ApiError, validation_error
from api.services import idempotency
from api.services.idempotency import IdempotencyKey
from api.services.presenters import API_PREFIX
from api.services.recipients import PLACEHOLDER, placeholders
from schemas.responses import ErrorBody
from schemas.templates import SEED_CODE_TEMPLATES, SEED_LINK_TEMPLATES, SavedTemplate

router = APIRouter(prefix=API_PREFIX, tags=["dashboard"])
MAX_TEMPLATES_PER_SPONSOR = 200


def _rate(successful: int, processed: int) -> float:
    return round(successful / processed * 100, 1) if processed else 0.0


@router.get("/templates", summary="Ready-made and saved operation templates")
def get_templates(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """The seed's templates, then the caller's saved ones (``source: saved``)."""
    saved: list[dict[str, Any]] = []
    if principal.sponsor_id is not None:
        for name, channel, message, batch, concurrency, retries, updated in store_of(
            request
        ).templates.list(principal.sponsor_id):
            saved.append(
                {
                    "name": name,
                    "channel": channel,
                    "message": message,
                    "processing_options": {
                        "batch_size": batch,
                        "max_concurrency": concurrency,
                        "retry_attempts": retries,
                    },
                    "source": "saved",
                    "updated_at": updated.replace(tzinfo=UTC).isoformat(),
                }
            )
    return {
        "success": True,
        "data": {
            "link_send_templates": [*SEED_LINK_TEMPLATES, *saved],
            "code_generation_templates": SEED_CODE_TEMPLATES,
        },
    }


@router.post(
    "/templates",
    status_code=status.HTTP_201_CREATED,
    summary="Save a link-send template (replaces one of the same name)",
    responses={409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def save_template(
    request: Request,
    principal: CurrentPrincipal,
    body: SavedTemplate,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    if principal.sponsor_id is None:
        raise ApiError(403, "FORBIDDEN", "Templates belong to a sponsor: use a Sponsor token")
    sponsor_id = principal.sponsor_id
    stray = PLACEHOLDER.sub("", body.message)
    if "{" in stray or "}" in stray:
        raise validation_error("message", "placeholders are {identifier}, e.g. {name} or {link}")
    keyed = idempotency.claim(sponsor_id, "templates", idempotency_key, body)

    async def save() -> dict[str, Any]:
        store = store_of(request)
        existing = await asyncio.to_thread(store.templates.list, sponsor_id)
        names = {row[0] for row in existing}
        if body.name not in names and len(names) >= MAX_TEMPLATES_PER_SPONSOR:
            raise ApiError(
                409,
                "TOO_MANY_TEMPLATES",
                f"At most {MAX_TEMPLATES_PER_SPONSOR} templates per sponsor",
            )
        await asyncio.to_thread(
            store.templates.save,
            sponsor_id,
            name=body.name,
            channel=body.channel.value,
            message=body.message,
            batch_size=body.processing_options.batch_size,
            max_concurrency=body.processing_options.max_concurrency,
            retry_attempts=body.processing_options.retry_attempts,
        )
        return {
            "success": True,
            "message": f"Template '{body.name}' saved",
            "data": {"name": body.name, "placeholders": sorted(placeholders(body.message))},
        }

    return await idempotency.once(request, keyed, status.HTTP_201_CREATED, save)


@router.get("/statistics", summary="Dashboard figures computed from ClickHouse")
def get_statistics(
    request: Request,
    principal: CurrentPrincipal,
    time_zone: Annotated[str, Query(alias="timeZone", max_length=64)] = "Europe/Istanbul",
) -> dict[str, Any]:
    """The seed's dashboard (its example is mock data; these are counted from real rows).

    Read from the statistics rollups, which ClickHouse recomputes every 10 seconds from the
    latest version of every operation: exact as of ``as_of``. ``last_30_days`` starts at the
    UTC day 30 days ago; ``popular_times`` groups operations by the hour they were submitted,
    in ``timeZone`` (by UTC hour: in zones with a half-hour offset, the hour that starts in
    it).
    """
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise validation_error("timeZone", "not an IANA time zone") from exc
    now = datetime.now(UTC)
    raw = store_of(request).reader.statistics(
        principal.sponsor_scope, since=now - timedelta(days=30), tz=time_zone
    )
    ops, done, failed, cancelled, partial, processed, successful, avg_ms, cost = raw["totals"]
    recent_ops, links, codes, recent_processed, recent_successful = raw["recent"]
    return {
        "success": True,
        "data": {
            "total_operations": ops,
            "successful_operations": done,
            "failed_operations": failed,
            "cancelled_operations": cancelled,
            "partially_completed_operations": partial,
            "total_items_processed": processed,
            "total_successful_items": successful,
            "overall_success_rate": _rate(successful, processed),
            "average_processing_time_minutes": round((avg_ms or 0) / 60000, 2),
            "total_cost": round(cost or 0.0, 4),
            "last_30_days": {
                "operations_count": recent_ops,
                "links_sent": links,
                "codes_generated": codes,
                "success_rate": _rate(recent_successful, recent_processed),
            },
            # Per UTC day of submission, oldest first; days without operations are absent.
            "daily_last_30_days": [
                {
                    "date": day.isoformat(),
                    "operations_count": n,
                    "items_processed": items,
                    "success_rate": _rate(ok, items),
                }
                for day, n, items, ok in raw["days"]
            ],
            "channel_breakdown": {
                str(channel).lower(): {
                    "count": count,
                    "success_rate": _rate(ok, count),
                    "cost": round(channel_cost, 4),
                }
                for channel, count, ok, channel_cost in raw["channels"]
            },
            "popular_times": [
                {"hour": hour, "operations": n, "success_rate": _rate(ok, items)}
                for hour, n, items, ok in raw["hours"]
            ],
            "as_of": raw["as_of"].isoformat() if raw["as_of"] else None,
        },
    }
