"""chDB returns naive datetimes for UTC columns; readers make them aware again."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
