"""Dealer invitation jobs: what an upload is checked against, what it is queued as, and how a
job is presented in the seed's ``bulk-status`` shape."""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import Request

from analytics.interfaces import SubmitLookups
from analytics.inventory import InventoryReader
from api.auth import Principal
from api.deps import settings_of
from api.errors import ApiError
from api.services import workbook
from api.services.presenters import status_url
from api.services.submission import queue_link_send
from core.settings import ApiSettings
from schemas.common import Channel, OperationStatus, OperationType
from schemas.link_wire import DealerRow, LinkSendSpec, PreparedRecipient
from schemas.responses import BulkInvitationStatus, DealerError, ErrorSummary
from schemas.status import OperationSnapshot

log = logging.getLogger("bulkops.api")

DEALER_PREFIX = "/api/v1/sponsorship/dealer"

_JOB_STATUS = {
    OperationStatus.QUEUED: "Pending",
    OperationStatus.VALIDATING: "Pending",
    OperationStatus.PROCESSING: "Processing",
    OperationStatus.PAUSED: "Paused",
    OperationStatus.COMPLETED: "Completed",
    OperationStatus.PARTIALLY_COMPLETED: "PartialSuccess",
    OperationStatus.FAILED: "Failed",
    OperationStatus.CANCELLED: "Cancelled",
}


def row_errors(
    lookups: SubmitLookups, sponsor_id: int, parsed: workbook.ParsedSheet
) -> list[workbook.RowError]:
    """Every problem of the sheet at once: invalid rows, duplicates, dealers already invited."""
    errors = parsed.errors + workbook.find_duplicates(parsed.dealers)
    existing = lookups.existing_dealers(sponsor_id, [d.email for d in parsed.dealers])
    errors += [
        workbook.RowError(d.row, "Email", "A dealer with this email already exists", d.email)
        for d in parsed.dealers
        if d.email in existing
    ]
    return sorted(errors, key=lambda e: (e.row, e.field))


def check_codes(
    lookups: SubmitLookups,
    settings: ApiSettings,
    sponsor_id: int,
    dealers: Sequence[workbook.DealerInput],
) -> None:
    """The seed's availability check: every tier must hold enough available codes."""
    tier_ids = settings.dealer_tier_ids
    needed: Counter[str] = Counter()
    for dealer in dealers:
        needed[dealer.tier] += dealer.code_count
    available = lookups.available_codes(sponsor_id)
    short = [
        {"tier": tier, "required": count, "available": available.get(tier_ids[tier], 0)}
        for tier, count in sorted(needed.items())
        if count > available.get(tier_ids[tier], 0)
    ]
    if short:
        first = short[0]
        raise ApiError(
            422,
            "INSUFFICIENT_CODES",
            f"Yetersiz kod ({first['tier']} tier). Gerekli: {first['required']}, "
            f"Mevcut: {first['available']}",
            {"tiers": short},
        )


def invitations(
    dealers: Sequence[workbook.DealerInput], invitation_type: str, settings: ApiSettings
) -> list[PreparedRecipient]:
    """One recipient per dealer: an invitation link with a fresh secret token, and the dealer
    (its codes are reserved by the worker)."""
    return [
        _invitation(index, dealer, invitation_type, settings)
        for index, dealer in enumerate(dealers)
    ]


def _invitation(
    index: int, dealer: workbook.DealerInput, invitation_type: str, settings: ApiSettings
) -> PreparedRecipient:
    token = secrets.token_urlsafe(24)
    link = f"{settings.dealer_invite_url}/{token}"
    return PreparedRecipient(
        index=index,
        name=dealer.name,
        address=dealer.phone,
        message=f"Merhaba {dealer.name}! Bayi davetiniz hazır: {link}",
        dealer=DealerRow(
            row_number=dealer.row,
            email=dealer.email,
            phone=dealer.phone,
            dealer_name=dealer.name,
            tier=dealer.tier,
            tier_id=settings.dealer_tier_ids[dealer.tier],
            code_count=dealer.code_count,
            token=token,
            invitation_type=invitation_type,
        ),
    )


def invitation_spec(settings: ApiSettings, *, send_sms: bool) -> LinkSendSpec:
    """How a job's invitations go out: SMS through the link-send providers, or none."""
    return LinkSendSpec(
        channel=Channel.SMS,
        subject="Bayi daveti",
        batch_size=settings.dealer_batch_size,
        max_concurrency=settings.dealer_max_concurrency,
        retry_attempts=2,
        retry_delay_seconds=1.0,
        price_per_message=settings.price(Channel.SMS.value) if send_sms else 0.0,
        recipient_chunks=1,
        deliver=send_sms,
    )


# A job's invitation type never changes: once read, it is kept (bounded; oldest dropped).
_INVITATION_TYPES: dict[str, str] = {}
_INVITATION_TYPES_KEPT = 10_000


def _invitation_type(inventory: InventoryReader, snapshot: OperationSnapshot) -> str | None:
    known = _INVITATION_TYPES.get(snapshot.operation_id)
    if known is None:
        known = inventory.invitation_type(snapshot.sponsor_id, snapshot.operation_id)
        if known is not None:
            if len(_INVITATION_TYPES) >= _INVITATION_TYPES_KEPT:
                _INVITATION_TYPES.pop(next(iter(_INVITATION_TYPES)))
            _INVITATION_TYPES[snapshot.operation_id] = known
    return known


def job_status(inventory: InventoryReader, snapshot: OperationSnapshot) -> BulkInvitationStatus:
    """The seed's ``bulk-status`` of a job (blocking: call it off the event loop)."""
    errors = inventory.dealer_errors(snapshot.sponsor_id, snapshot.operation_id)
    total = snapshot.total_items
    return BulkInvitationStatus(
        job_id=snapshot.operation_id,
        status=_JOB_STATUS[snapshot.status],
        invitation_type=_invitation_type(inventory, snapshot),
        total_dealers=total,
        processed_dealers=snapshot.processed_items,
        successful_invitations=snapshot.successful_items,
        failed_invitations=snapshot.failed_items + snapshot.skipped_items,
        progress_percentage=round(snapshot.processed_items / total * 100, 1) if total else 0.0,
        created_date=snapshot.created_at,
        started_date=snapshot.started_at,
        completed_date=snapshot.completed_at,
        error_summary=ErrorSummary(
            errors=[
                DealerError(row_number=row, email=email, error=error, timestamp=at)
                for row, email, error, at in errors
            ]
        ),
        report_url=f"{DEALER_PREFIX}/bulk-status/{snapshot.operation_id}/report.xlsx",
        operation_status_url=status_url(snapshot.operation_id),
    )


async def queue_invitations(
    request: Request,
    principal: Principal,
    sponsor_id: int,
    operation_id: str,
    *,
    file_name: str,
    dealers: Sequence[workbook.DealerInput],
    invitation_type: str,
    spec: LinkSendSpec,
    request_hash: str | None,
) -> tuple[int, datetime]:
    """Queue the workbook's invitations as one dealer-invitation operation (a link send to
    each dealer); returns how many and when it was queued."""
    now = datetime.now(UTC)
    recipients = invitations(dealers, invitation_type, settings_of(request))
    await queue_link_send(
        request,
        principal,
        sponsor_id=sponsor_id,
        operation_id=operation_id,
        name=f"Dealer invitations: {file_name}"[:200],
        spec=spec,
        recipients=recipients,
        now=now,
        operation_type=OperationType.DEALER_INVITATION,
        request_hash=request_hash,
    )
    log.info(
        "operation %s: %d dealer invitations (%s, sms=%s) for sponsor %d by %s",
        operation_id,
        len(recipients),
        invitation_type,
        spec.deliver,
        sponsor_id,
        principal.subject,
    )
    return len(recipients), now
