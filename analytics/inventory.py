"""The code inventory and dealer invitations, as the API reads them (what a submit checks
before it queues: known sponsorship codes, available codes per tier, existing dealers).

Every query is a named statement of ``sql/reads.sql``; values are bound, never spliced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from analytics import sql
from analytics.connection import Connection
from analytics.timefix import utc

_SQL = sql.load("reads.sql")


class InventoryReader:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _query(self, name: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self._connection.query(_SQL[name], parameters)

    def known_codes(self, sponsor_id: int, codes: Iterable[str]) -> set[str]:
        """Which of ``codes`` this system generated for the sponsor."""
        wanted = sorted(set(codes))
        found: set[str] = set()
        for start in range(0, len(wanted), 10_000):
            rows = self._query(
                "known_codes", {"sponsor": sponsor_id, "codes": wanted[start : start + 10_000]}
            )
            found.update(str(row[0]) for row in rows)
        return found

    def available_codes(self, sponsor_id: int) -> dict[int, int]:
        """Available codes per subscription tier id."""
        return {int(row[0]): int(row[1]) for row in self.inventory(sponsor_id)}

    def inventory(self, sponsor_id: int) -> list[tuple[int, int, int, int, int]]:
        """(tier id, available, reserved, transferred, expired) per tier."""
        return [
            (int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in self._query("inventory", {"sponsor": sponsor_id})
        ]

    def existing_dealers(self, sponsor_id: int, emails: Sequence[str]) -> set[str]:
        """Which of ``emails`` (lower case) already belong to an invited dealer."""
        found: set[str] = set()
        for start in range(0, len(emails), 5000):
            rows = self._query(
                "existing_dealers",
                {"sponsor": sponsor_id, "emails": list(emails[start : start + 5000])},
            )
            found.update(str(row[0]) for row in rows)
        return found

    def dealer_report(self, sponsor_id: int, operation_id: str) -> list[tuple[Any, ...]]:
        rows = self._query("dealer_report", {"sponsor": sponsor_id, "operation": operation_id})
        return [(*row[:10], utc(row[10])) for row in rows]

    def dealer_errors(
        self, sponsor_id: int, operation_id: str, limit: int = 100
    ) -> list[tuple[int, str, str, datetime | None]]:
        rows = self._query(
            "dealer_errors", {"sponsor": sponsor_id, "operation": operation_id, "limit": limit}
        )
        return [(int(r[0]), str(r[1]), str(r[2]), utc(r[3])) for r in rows]

    def invitation_type(self, sponsor_id: int, operation_id: str) -> str | None:
        """A dealer job's invitation type (None until the worker has stored its dealers)."""
        found = self._query("invitation_type", {"sponsor": sponsor_id, "operation": operation_id})
        return str(found[0][0]) if found and found[0][0] else None
