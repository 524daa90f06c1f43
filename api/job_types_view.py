"""The registered job types, followed from their compacted topic like the status view."""

from __future__ import annotations

import logging
import threading

from api.status_view import Waiters
from schemas.jobs import JobTypeRecord

log = logging.getLogger("bulkops.api.job_types")


class JobTypeView:
    """The latest record of every job type; thread-safe (fed by the follower's thread)."""

    def __init__(self) -> None:
        self._records: dict[str, JobTypeRecord] = {}
        self._lock = threading.Lock()
        self._waiters = Waiters()

    def apply(self, record: JobTypeRecord) -> None:
        name = record.spec.name
        with self._lock:
            current = self._records.get(name)
            if current is None or record.version >= current.version:
                self._records[name] = record
        self._waiters.wake(name)

    def apply_json(self, value: bytes) -> None:
        self.apply(JobTypeRecord.model_validate_json(value))

    def forget(self, key: bytes) -> None:
        """Job types are disabled, never deleted: a tombstone here is someone else's mistake."""
        log.warning("job-type view: ignoring a tombstone for %r", key)

    def get(self, name: str) -> JobTypeRecord | None:
        with self._lock:
            return self._records.get(name)

    def all(self) -> list[JobTypeRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.spec.name)

    async def applied(self, name: str, version: int, seconds: float) -> bool:
        """Whether ``version`` (or a later one) of ``name`` is in the view within ``seconds``."""

        def seen() -> bool:
            record = self.get(name)
            return record is not None and record.version >= version

        return await self._waiters.until(name, seen, seconds)
