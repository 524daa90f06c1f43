"""How an operation runs, as its messages carry it: when its batches may be released
(:class:`ReleaseSchedule`), how fast its sends go (:class:`Throttle`, which a rethrottle
changes), and when it pauses itself (:class:`AutoPauseRule`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from schemas.common import WireModel


class ReleaseSchedule(WireModel):
    """When batches may be released: the request's ``scheduling``, checked and resolved.

    ``start_at`` is the requested ``scheduledDate`` (or the submit time); the rest is
    evaluated in ``time_zone`` by :mod:`core.schedule`.
    """

    start_at: datetime
    time_zone: str = Field(max_length=64)
    spread_seconds: float = Field(default=0.0, ge=0, le=7 * 24 * 3600)
    preferred_hours: list[str] = Field(default_factory=list, max_length=24)
    avoid_weekdays: list[int] = Field(
        default_factory=list, max_length=7, description="0 = Monday … 6 = Sunday"
    )

    @property
    def always_open(self) -> bool:
        return not self.preferred_hours and not self.avoid_weekdays


class Throttle(WireModel):
    """How fast a send goes: in-flight sends, a send rate of its own, the spread of its
    batches. In a rethrottle, what is absent stays as it is."""

    max_concurrency: int | None = Field(default=None, ge=1, le=100)
    rate_per_second: float | None = Field(
        default=None, gt=0, le=100_000, description="This operation's own limit of sends/s."
    )
    spread_seconds: float | None = Field(default=None, ge=1, le=7 * 24 * 3600)


class AutoPauseRule(WireModel):
    """Pause the operation when ``rate`` of its latest ``window`` items failed."""

    rate: float = Field(gt=0, le=1)
    window: int = Field(ge=10, le=100_000)
