"""Quotas on the API side: what a sponsor may use, the worker's verdict on a submit, and the
Admin's changes.

The worker decides (:mod:`streams.quotas`); the API reports its verdict. A submit by a
sponsor under any quota waits, after Kafka acknowledged it, for the worker to register or
refuse the operation, so the answer is exact whichever API replica took it: 202, or 429
``QUOTA_EXCEEDED`` with the quota, its use and limit and, where waiting helps, Retry-After.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, time, timedelta

from fastapi import Request

from api.auth import Principal
from api.deps import settings_of, sink_of, view_of
from api.errors import ApiError
from api.producer import ProduceError
from api.status_view import QuotaView
from core.quotas import default_limits, quota_now, refusal, taken, use_on
from core.topics import DEFAULTS_KEY, Topics, sponsor_key
from schemas.quotas import QuotaLimits, QuotaRefusal, QuotaUpdate, QuotaUse
from schemas.responses import QuotaEstimate, QuotaOverview
from schemas.status import OperationSnapshot

log = logging.getLogger("bulkops.api")


def quota_view_of(request: Request) -> QuotaView:
    return request.app.state.quota_view


def exempt(request: Request, principal: Principal) -> bool:
    """Operations an Admin submits are counted but not refused (unless configured)."""
    return principal.is_admin and settings_of(request).quota_exempt_admins


def limits_for(request: Request, sponsor_id: int) -> QuotaLimits:
    """The sponsor's limits as the worker applies them: settings, default overrides, own."""
    view = quota_view_of(request)
    defaults = view.defaults()
    own = view.sponsor(sponsor_id)
    limits = default_limits(settings_of(request), defaults.overrides if defaults else {})
    return limits.overridden_by(own.overrides if own else {})


def use_of(request: Request, sponsor_id: int) -> QuotaUse:
    """What the sponsor uses now, as far as the API has seen (daily counts of today only)."""
    own = quota_view_of(request).sponsor(sponsor_id)
    today = quota_now(settings_of(request)).date()
    return use_on(own.use if own else QuotaUse(), today)


def admission_wanted(request: Request, principal: Principal, sponsor_id: int, items: int) -> bool:
    """Refuse at once what no wait can admit (too many items for one operation); say whether
    the submit must wait for the worker's verdict (any quota that can refuse it)."""
    if exempt(request, principal):
        return False
    limits = limits_for(request, sponsor_id)
    cap = limits.max_items_per_operation
    if cap is not None and items > cap:
        too_big = refusal(
            QuotaLimits(max_items_per_operation=cap),
            QuotaUse(),
            items,
            quota_now(settings_of(request)),
        )
        assert too_big is not None
        raise quota_exceeded(too_big)
    return any(
        value is not None
        for value in (
            limits.max_concurrent_operations,
            limits.max_operations_per_day,
            limits.max_items_per_day,
        )
    )


def estimate(request: Request, principal: Principal, sponsor_id: int, items: int) -> QuotaEstimate:
    """A dry run's view of the quotas: what the submit would take, and what would refuse it."""
    limits = limits_for(request, sponsor_id)
    use = use_of(request, sponsor_id)
    moment = quota_now(settings_of(request))
    free = exempt(request, principal)
    return QuotaEstimate(
        limits=limits,
        use=use,
        would_use=taken(use, items, moment),
        refusal=None if free else refusal(limits, use, items, moment),
        exempt=free,
    )


async def verdict(request: Request, operation_id: str) -> OperationSnapshot | None:
    """The operation as the worker registered it, 429 if it refused it, None if the worker
    has not said within the verdict timeout (the status will tell)."""
    timeout = settings_of(request).quota_verdict_timeout_seconds
    snapshot = await view_of(request).registered(operation_id, timeout)
    if snapshot is None:
        log.warning(
            "operation %s: no quota verdict from the worker within %.0fs; answered 202",
            operation_id,
            timeout,
        )
        return None
    if snapshot.stop_reason == "QUOTA_EXCEEDED" and snapshot.quota_refusal is not None:
        log.info("operation %s: refused: %s", operation_id, snapshot.quota_refusal.message())
        raise quota_exceeded(snapshot.quota_refusal, operation_id)
    return snapshot


def quota_exceeded(refused: QuotaRefusal, operation_id: str | None = None) -> ApiError:
    details = refused.model_dump(mode="json", by_alias=True)
    if operation_id is not None:
        details["operationId"] = operation_id
    headers = None
    if refused.retry_after_seconds is not None:
        headers = {"Retry-After": str(refused.retry_after_seconds)}
    return ApiError(429, "QUOTA_EXCEEDED", refused.message(), details, headers)


def overview(request: Request, sponsor_id: int | None) -> QuotaOverview:
    """Limits and use of a sponsor, or (``None``) the defaults every sponsor starts from."""
    settings = settings_of(request)
    view = quota_view_of(request)
    moment = quota_now(settings)
    if sponsor_id is None:
        snapshot = view.defaults()
        limits = default_limits(settings, snapshot.overrides if snapshot else {})
    else:
        snapshot = view.sponsor(sponsor_id)
        limits = limits_for(request, sponsor_id)
    overrides = snapshot.overrides if snapshot else {}
    return QuotaOverview(
        sponsor_id=sponsor_id,
        bulk_operation_limits=limits,
        overrides=QuotaLimits.model_validate(overrides).model_dump(
            by_alias=True, include=set(overrides)
        ),
        use=None if sponsor_id is None else use_of(request, sponsor_id),
        day_resets_at=datetime.combine(moment.date() + timedelta(days=1), time(), UTC),
        admins_exempt=settings.quota_exempt_admins,
    )


async def change(
    request: Request, principal: Principal, sponsor_id: int | None, limits: QuotaLimits
) -> bool:
    """Send an Admin's overrides (the fields set in ``limits``) to the worker; True once it
    has applied them, False if it has not within the verdict timeout (it will)."""
    settings = settings_of(request)
    topics = Topics(settings.topic_prefix)
    update = QuotaUpdate(
        sponsor_id=sponsor_id,
        overrides=limits.set_fields(),
        requested_by=principal.subject,
        requested_at=datetime.now(UTC),
        update_id=uuid.uuid4().hex,
    )
    value = update.model_dump_json().encode()
    sink = sink_of(request)
    try:
        if sponsor_id is None:
            for partition in range(settings.partitions):
                await sink.send(topics.operations.name, DEFAULTS_KEY, value, partition=partition)
        else:
            await sink.send(topics.operations.name, sponsor_key(sponsor_id), value)
    except ProduceError as exc:
        raise ApiError(
            503, "SYSTEM_ERROR", f"Queue service unavailable: quotas not changed: {exc}"
        ) from exc
    log.info(
        "quota overrides of %s sent by %s: %s",
        f"sponsor {sponsor_id}" if sponsor_id is not None else "every sponsor",
        principal.subject,
        update.overrides or "none",
    )
    wait = settings.quota_verdict_timeout_seconds
    return await quota_view_of(request).applied(sponsor_id, update.update_id, wait)
