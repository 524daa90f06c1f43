"""``send-links``: checks of the request as a whole, recipients prepared for the worker, the
spec every batch carries, and the submit-time estimate."""

from __future__ import annotations

from datetime import datetime, timedelta

from analytics.interfaces import SubmitLookups
from api.errors import ApiError, validation_error
from api.services.parallel import CpuPool
from api.services.recipients import Prepared, TemplateError, prepare
from core.settings import ApiSettings
from schemas.link_wire import LinkSendSpec
from schemas.requests import BulkLinkSendRequest
from schemas.status import OperationSnapshot


def check_request(settings: ApiSettings, body: BulkLinkSendRequest) -> None:
    """Limits of the whole request: size, batch size, a budget that buys one message."""
    violation = settings.size_violation(len(body.recipients), body.processing.batch_size)
    if violation is not None:
        field, reason = violation
        raise validation_error("recipients" if field == "quantity" else field, reason)
    price = settings.price(body.channel.value)
    budget = body.metadata.budget_limit
    if budget is not None and budget < price:
        raise validation_error(
            "metadata.budgetLimit", f"too small for even one {body.channel.value} message ({price})"
        )


def prepared_recipients(
    body: BulkLinkSendRequest,
    *,
    operation_id: str,
    sponsor_id: int,
    settings: ApiSettings,
    lookups: SubmitLookups,
    pool: CpuPool,
) -> Prepared:
    """Every recipient validated and rendered (blocking: call it off the event loop); 422
    for a bad template or when no recipient can be sent to."""
    try:
        prepared = prepare(
            body,
            operation_id=operation_id,
            region=settings.default_phone_region,
            link_base_url=settings.link_base_url,
            known_codes=lambda codes: lookups.known_codes(sponsor_id, codes),
            addresses=pool.addresses,
        )
    except TemplateError as exc:
        raise validation_error(exc.field, str(exc)) from exc
    if prepared.valid == 0:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "No recipient can be sent to: " + "; ".join(prepared.warnings()),
            prepared.details(),
        )
    return prepared


def link_spec(settings: ApiSettings, body: BulkLinkSendRequest) -> LinkSendSpec:
    """What every batch of the send carries (the price snapshotted at submit)."""
    return LinkSendSpec(
        channel=body.channel,
        subject=body.operation_name,
        batch_size=body.processing.batch_size,
        max_concurrency=body.processing.max_concurrency,
        retry_attempts=body.processing.retry_attempts,
        retry_delay_seconds=body.processing.retry_delay_seconds,
        stop_on_first_error=body.processing.stop_on_first_error,
        budget_limit=body.metadata.budget_limit,
        price_per_message=settings.price(body.channel.value),
        recipient_chunks=1,
    )


def completion_estimate(
    now: datetime,
    *,
    sending_seconds: float,
    scheduled: bool,
    snapshot: OperationSnapshot,
    batches: int,
) -> datetime | None:
    """Submit-time ETA: the sending time at the paced rate, after the planned start and no
    earlier than the last planned release plus one batch's share (None if never known)."""
    if not scheduled:
        return now + timedelta(seconds=sending_seconds)
    start, last = snapshot.scheduled_start, snapshot.releases_end_at
    if start is None or last is None:
        return None
    return max(
        start + timedelta(seconds=sending_seconds),
        last + timedelta(seconds=1 + sending_seconds / max(batches, 1)),
    )
