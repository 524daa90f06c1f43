"""Release schedules: start, sending windows in the operation's time zone (DST), spread."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from core import schedule as sched
from schemas.common import OperationStatus
from schemas.requests import SchedulingOptions
from schemas.run_rules import ReleaseSchedule
from streams.progress import OperationState, pause, request_cancel, resume
from streams.releases import release_quota

BERLIN = "Europe/Berlin"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_preferred_hours_follow_local_time_across_dst() -> None:
    nine = ReleaseSchedule(
        start_at=at("2026-03-27T00:00:00+00:00"), time_zone=BERLIN, preferred_hours=["09:00"]
    )
    # Friday before the change (CET, UTC+1) and Monday after it (CEST, UTC+2).
    assert sched.first_open(nine, at("2026-03-27T00:00:00+00:00")) == at("2026-03-27T08:00Z")
    assert sched.first_open(nine, at("2026-03-30T00:00:00+00:00")) == at("2026-03-30T07:00Z")
    assert sched.is_open(nine, at("2026-03-30T07:59:59Z"))
    assert not sched.is_open(nine, at("2026-03-30T08:00:00Z"))


def test_a_whole_local_day_is_25_hours_when_clocks_go_back() -> None:
    weekdays_only = ReleaseSchedule(
        start_at=at("2026-10-24T00:00Z"),
        time_zone=BERLIN,
        avoid_weekdays=[0, 1, 2, 3, 4, 5],  # Sundays only; 2026-10-25 is the change
    )
    day = sched.open_seconds(weekdays_only, at("2026-10-24T00:00Z"), at("2026-10-27T00:00Z"))
    assert day == 25 * 3600


def test_avoided_weekdays_move_the_start_to_the_next_allowed_day() -> None:
    no_weekend = ReleaseSchedule(
        start_at=at("2026-11-28T10:00:00+03:00"),  # a Saturday in Istanbul
        time_zone="Europe/Istanbul",
        avoid_weekdays=[5, 6],
    )
    assert sched.planned_start(no_weekend) == at("2026-11-30T00:00:00+03:00")


def test_overlapping_windows_merge() -> None:
    s = ReleaseSchedule(
        start_at=at("2026-11-30T00:00Z"), time_zone="UTC", preferred_hours=["09:00", "09:30"]
    )
    assert sched.open_seconds(s, at("2026-11-30T00:00Z"), at("2026-12-01T00:00Z")) == 5400


def test_spread_releases_batches_evenly_over_its_duration() -> None:
    start = at("2026-11-30T12:00Z")
    s = ReleaseSchedule(start_at=start, time_zone="UTC", spread_seconds=100)
    assert sched.release_limit(s, 10, start - timedelta(seconds=1), 0) == 0
    assert sched.release_limit(s, 10, start, 0) == 1
    assert sched.release_limit(s, 10, start + timedelta(seconds=55), 0) == 6
    assert sched.release_limit(s, 10, start + timedelta(seconds=90), 0) == 10
    assert sched.release_limit(s, 10, start + timedelta(hours=1), 0) == 10
    # Paused time does not count.
    assert sched.release_limit(s, 10, start + timedelta(seconds=55), 50) == 1
    assert sched.releases_end(s, 10) == start + timedelta(seconds=90)


def test_spread_stops_while_closed_and_goes_on_when_open() -> None:
    s = ReleaseSchedule(
        start_at=at("2026-11-30T09:30Z"),
        time_zone="UTC",
        preferred_hours=["09:00", "14:00"],
        spread_seconds=3600,
    )
    # 30 minutes of the 09:00 window, then nothing until 14:00.
    assert sched.release_limit(s, 4, at("2026-11-30T09:59:00Z"), 0) == 2
    assert sched.release_limit(s, 4, at("2026-11-30T12:00:00Z"), 0) == 0
    assert sched.release_limit(s, 4, at("2026-11-30T14:00:00Z"), 0) == 3
    assert sched.releases_end(s, 4) == at("2026-11-30T14:15:00Z")


def test_resolve_maps_the_request() -> None:
    now = datetime.now(UTC)
    assert sched.resolve(SchedulingOptions(), now) is None
    options = SchedulingOptions.model_validate(
        {
            "isScheduled": True,
            "scheduledDate": (now + timedelta(minutes=5)).isoformat(),
            "timeZone": BERLIN,
            "spreadOverTime": True,
            "spreadDurationMinutes": 0.5,
            "preferredHours": ["14:00", "09:00", "09:00"],
            "avoidWeekdays": ["Sunday", "Saturday"],
        }
    )
    resolved = sched.resolve(options, now)
    assert resolved is not None
    assert resolved.spread_seconds == 30
    assert resolved.preferred_hours == ["09:00", "14:00"]
    assert resolved.avoid_weekdays == [5, 6]
    assert resolved.start_at > now


@pytest.mark.parametrize(
    ("scheduling", "fragment"),
    [
        ({"isScheduled": True}, "scheduledDate is required"),
        ({"isScheduled": True, "scheduledDate": "2020-01-01T00:00:00Z"}, "in the past"),
        ({"isScheduled": True, "scheduledDate": "2099-01-01T09:00:00"}, "offset"),
        ({"timeZone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"timeZone": "../../etc/passwd"}, "unknown time zone"),
        (
            {"avoidWeekdays": list(sched.WEEKDAYS)},
            "never run",
        ),
        ({"preferredHours": ["24:00"]}, "preferredHours"),
        ({"spreadOverTime": True, "spreadDurationMinutes": 0}, "spreadDurationMinutes"),
    ],
)
def test_impossible_or_malformed_schedules_are_refused(
    scheduling: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        SchedulingOptions.model_validate(scheduling)
    assert fragment in str(caught.value)


def _state(schedule: ReleaseSchedule | None = None, batches: int = 10) -> OperationState:
    now = datetime.now(UTC)
    return OperationState(
        operation_id="bulk_" + "0" * 32,
        sponsor_id=1,
        operation_type="BulkLinkSend",
        operation_name="t",
        requested_by="u",
        status=OperationStatus.PROCESSING,
        total_items=batches,
        batches_total=batches,
        created_at=now,
        started_at=now,
        last_updated=now,
        current_phase="Processing",
        status_message="",
        schedule=schedule,
    )


def test_pause_holds_everything_and_resume_gives_it_back() -> None:
    now = datetime.now(UTC)
    state = _state()
    assert release_quota(state, now) == 10
    assert pause(state, now) and state.status is OperationStatus.PAUSED
    assert not pause(state, now), "pausing twice changes nothing"
    assert release_quota(state, now) == 0
    assert resume(state, now) and state.status is OperationStatus.PROCESSING
    assert not resume(state, now)
    assert release_quota(state, now) == 10


def test_paused_open_time_does_not_count_for_the_spread() -> None:
    start = datetime.now(UTC) - timedelta(seconds=100)
    state = _state(ReleaseSchedule(start_at=start, time_zone="UTC", spread_seconds=100))
    pause(state, start + timedelta(seconds=10))
    resume(state, start + timedelta(seconds=60))
    assert state.paused_seconds == pytest.approx(50)
    assert release_quota(state, start + timedelta(seconds=60)) == 2


def test_a_cancel_releases_held_batches_so_they_settle() -> None:
    now = datetime.now(UTC)
    state = _state(ReleaseSchedule(start_at=now + timedelta(hours=1), time_zone="UTC"))
    assert release_quota(state, now) == 0
    pause(state, now)
    assert request_cancel(state, now)
    assert state.paused_at is None
    assert release_quota(state, now) == 10


def test_the_indexes_read_the_keys_the_table_really_has() -> None:
    from streams.tables import HELD_COUNT as _HELD_COUNT
    from streams.tables import WEBHOOK_STATE as _WEBHOOK_STATE

    stored = _state().model_dump(mode="json")
    assert _HELD_COUNT in stored and _WEBHOOK_STATE in stored
