"""When an operation's batches may go out: start time, sending windows and spread.

Pure functions of a :class:`~schemas.run_rules.ReleaseSchedule` and the time, shared by the
API (to refuse impossible schedules and to estimate completion) and the worker (to decide
how many batches it may release now). Sending windows are evaluated in the operation's own
time zone with :mod:`zoneinfo`, so "09:00 on weekdays" stays 09:00 across DST changes.

``preferredHours`` entries are the starts of one-hour windows (``"09:00"`` → 09:00-10:00
local time); with none, every hour of an allowed day is open. ``avoidWeekdays`` closes
whole local days. A spread releases batch ``i`` of ``n`` once ``i/n`` of the spread's
duration of *open* time has passed since the start, so a spread over closed hours pauses
with them instead of bursting when they reopen. Time an operation spends paused does not
count either.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import get_args
from zoneinfo import ZoneInfo

from schemas.requests import SchedulingOptions, Weekday
from schemas.run_rules import ReleaseSchedule

WEEKDAYS: tuple[str, ...] = get_args(Weekday)
SEARCH_DAYS = 15
"""How far ahead an open window is looked for; with one allowed weekday it is within 8 days."""

_HOUR = timedelta(hours=1)
_MAX_SEARCH_SPANS = 25


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _day_windows(schedule: ReleaseSchedule, day: date) -> list[tuple[datetime, datetime]]:
    """The open intervals (UTC, merged, in order) of one local calendar day."""
    if day.weekday() in schedule.avoid_weekdays:
        return []
    tz = zone(schedule.time_zone)
    if not schedule.preferred_hours:
        return [(_local_midnight(day, tz), _local_midnight(day + timedelta(days=1), tz))]
    windows: list[tuple[datetime, datetime]] = []
    for start in sorted(schedule.preferred_hours):
        hour, minute = (int(part) for part in start.split(":"))
        begin = datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)
        end = begin + _HOUR
        if windows and begin <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((begin, end))
    return windows


def open_intervals(
    schedule: ReleaseSchedule, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """Open time within ``[start, end)``, as ordered UTC intervals."""
    tz = zone(schedule.time_zone)
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        for begin, finish in _day_windows(schedule, day):
            lo, hi = max(begin, start), min(finish, end)
            if lo < hi:
                yield lo, hi
        day += timedelta(days=1)


def open_seconds(schedule: ReleaseSchedule, start: datetime, end: datetime) -> float:
    if end <= start:
        return 0.0
    if schedule.always_open:
        return (end - start).total_seconds()
    return sum((hi - lo).total_seconds() for lo, hi in open_intervals(schedule, start, end))


def is_open(schedule: ReleaseSchedule, moment: datetime) -> bool:
    return schedule.always_open or any(
        True for _ in open_intervals(schedule, moment, moment + timedelta(microseconds=1))
    )


def after_open_seconds(
    schedule: ReleaseSchedule, start: datetime, seconds: float
) -> datetime | None:
    """The moment ``seconds`` of open time have passed since ``start``.

    None if the schedule never opens, or not within about a year (no estimate then).
    """
    if schedule.always_open:
        return start + timedelta(seconds=seconds)
    left = seconds
    horizon = start
    for _ in range(_MAX_SEARCH_SPANS):
        span_end = horizon + timedelta(days=SEARCH_DAYS)
        found = False
        for lo, hi in open_intervals(schedule, horizon, span_end):
            found = True
            length = (hi - lo).total_seconds()
            if length >= left:
                return lo + timedelta(seconds=left)
            left -= length
        if not found:
            return None
        horizon = span_end
    return None


def first_open(schedule: ReleaseSchedule, moment: datetime) -> datetime | None:
    """The first open instant at or after ``moment`` (None if the schedule never opens)."""
    return after_open_seconds(schedule, moment, 0.0)


def planned_start(schedule: ReleaseSchedule) -> datetime | None:
    return first_open(schedule, schedule.start_at)


def release_limit(
    schedule: ReleaseSchedule | None, batches_total: int, now: datetime, paused_seconds: float
) -> int:
    """How many batches may have been released by ``now`` (0 while closed or not started).

    Closed hours release nothing; batches already out keep going.
    """
    if schedule is None:
        return batches_total
    if now < schedule.start_at or not is_open(schedule, now):
        return 0
    if schedule.spread_seconds <= 0:
        return batches_total
    credit = open_seconds(schedule, schedule.start_at, now) - paused_seconds
    share = int(batches_total * max(credit, 0.0) / schedule.spread_seconds) + 1
    return min(batches_total, share)


def releases_end(schedule: ReleaseSchedule | None, batches_total: int) -> datetime | None:
    """When the last batch is planned to be released (None without a schedule)."""
    if schedule is None:
        return None
    if schedule.spread_seconds <= 0 or batches_total <= 1:
        return planned_start(schedule)
    last_share = schedule.spread_seconds * (batches_total - 1) / batches_total
    return after_open_seconds(schedule, schedule.start_at, last_share)


def resolve(options: SchedulingOptions, now: datetime) -> ReleaseSchedule | None:
    """The worker's schedule for a request's ``scheduling`` (None: send at once, no limits)."""
    spread = options.spread_duration_minutes * 60 if options.spread_over_time else 0.0
    if not (options.is_scheduled or spread or options.preferred_hours or options.avoid_weekdays):
        return None
    start = options.scheduled_date if options.is_scheduled and options.scheduled_date else now
    return ReleaseSchedule(
        start_at=max(start.astimezone(UTC), now),
        time_zone=options.time_zone,
        spread_seconds=spread,
        preferred_hours=sorted(set(options.preferred_hours)),
        avoid_weekdays=sorted({WEEKDAYS.index(day) for day in options.avoid_weekdays}),
    )
