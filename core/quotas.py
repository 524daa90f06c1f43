"""Quota arithmetic, shared by the worker (which decides) and the API (which reports).

The worker is the single writer of every sponsor's quota: each sponsor's submissions arrive
in order on one partition of the operations topic, so admitting or refusing them there is
exact whichever API replica took them. Days are UTC days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from core.settings import BulkopsSettings
from schemas.quotas import Quota, QuotaLimits, QuotaRefusal, QuotaUse


def default_limits(settings: BulkopsSettings, overrides: dict[str, int | None]) -> QuotaLimits:
    """The defaults for every sponsor: the settings (0 there: unlimited), then an Admin's
    overrides of them."""

    def limit(value: int) -> int | None:
        return value or None

    base = QuotaLimits(
        max_concurrent_operations=limit(settings.quota_max_concurrent_operations),
        max_items_per_operation=settings.max_items_per_operation,
        max_operations_per_day=limit(settings.quota_max_operations_per_day),
        max_items_per_day=limit(settings.quota_max_items_per_day),
    )
    return base.overridden_by(overrides)


def quota_now(settings: BulkopsSettings) -> datetime:
    """The clock quota days are counted on: the real one, shifted by the seconds in
    ``BULKOPS_QUOTA_CLOCK_FILE`` when that is set (tests of the midnight rollover)."""
    moment = datetime.now(UTC)
    path: Path | None = settings.quota_clock_file
    if path is not None and path.exists():
        text = path.read_text().strip()
        moment += timedelta(seconds=float(text or 0))
    return moment


def seconds_to_midnight(moment: datetime) -> int:
    """Whole seconds (at least 1) until the next UTC midnight."""
    midnight = datetime.combine(moment.date() + timedelta(days=1), time(), UTC)
    return max(1, int((midnight - moment).total_seconds() + 0.999))


def use_on(use: QuotaUse, day: date) -> QuotaUse:
    """``use`` as seen on ``day``: the daily counts start again on a new day."""
    if use.day == day:
        return use
    return QuotaUse(concurrent_operations=use.concurrent_operations, day=day)


def refusal(
    limits: QuotaLimits, use: QuotaUse, items: int, moment: datetime
) -> QuotaRefusal | None:
    """The first quota an operation of ``items`` items would break, or None to admit it."""
    today = use_on(use, moment.date())
    wait = seconds_to_midnight(moment)
    checks = (
        (Quota.ITEMS_PER_OPERATION, 0, items, None),
        (Quota.CONCURRENT, today.concurrent_operations, 1, None),
        (Quota.OPERATIONS_PER_DAY, today.operations_today, 1, wait),
        (Quota.ITEMS_PER_DAY, today.items_today, items, wait),
    )
    for quota, current, requested, retry_after in checks:
        limit = limits.of(quota)
        if limit is not None and current + requested > limit:
            never = quota is Quota.ITEMS_PER_DAY and items > limit
            return QuotaRefusal(
                quota=quota,
                limit=limit,
                current=current,
                requested=requested,
                retry_after_seconds=None if never else retry_after,
            )
    return None


def taken(use: QuotaUse, items: int, moment: datetime) -> QuotaUse:
    """``use`` after admitting an operation of ``items`` items at ``moment``."""
    today = use_on(use, moment.date())
    return QuotaUse(
        concurrent_operations=today.concurrent_operations + 1,
        operations_today=today.operations_today + 1,
        items_today=today.items_today + items,
        day=today.day,
    )
