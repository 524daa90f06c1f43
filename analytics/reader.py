"""What the API reads: history, items, aggregates, codes, statistics and retry input.

Every query is a named statement of ``sql/reads.sql``; values are bound, never spliced.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics import sql
from analytics.connection import Connection
from analytics.timefix import utc
from schemas.status import OperationSnapshot

_SQL = sql.load("reads.sql")


@dataclass(frozen=True)
class HistoryRow:
    operation_id: str
    operation_name: str
    operation_type: str
    status: str
    total_items: int
    processed_items: int
    successful_items: int
    failed_items: int
    skipped_items: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    requested_by: str
    subscription_tier_id: int | None
    code_prefix: str | None
    channel: str | None
    total_cost: float
    sponsor_id: int


@dataclass(frozen=True)
class JobOperationRow:
    operation_id: str
    status: str
    job_type: str
    total_items: int
    successful_items: int
    failed_items: int
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class CodeCounts:
    items: int
    unique_codes: int
    rows: int


class Reader:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _query(self, name: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self._connection.query(_SQL[name], parameters)

    def ping(self) -> None:
        """Raises unless ClickHouse answers a trivial query."""
        self._query("ping", {})

    def archived_snapshots(self, operation_ids: Sequence[str]) -> dict[str, OperationSnapshot]:
        """The last snapshots of operations that have left the status topic, by id (ids
        never archived are missing)."""
        found = self._query("archived_snapshots", {"operation_ids": list(operation_ids)})
        return {
            operation_id: OperationSnapshot.model_validate_json(snapshot)
            for operation_id, snapshot in found
        }

    def history(
        self,
        sponsor_id: int | None,
        *,
        limit: int,
        offset: int,
        status: str | None = None,
        operation_type: str | None = None,
        search: str | None = None,
    ) -> list[HistoryRow]:
        """A page of operations, newest first; ``search``: part of the name, any case."""
        rows = self._query(
            "history",
            {
                "sponsor": sponsor_id,
                "limit": limit,
                "offset": offset,
                "status": status,
                "kind": operation_type,
                "search": search,
            },
        )
        result = []
        for row in rows:
            values = list(row)
            for i in (9, 10, 11):
                values[i] = utc(values[i])
            result.append(HistoryRow(*values))
        return result

    def history_count(
        self,
        sponsor_id: int | None,
        status: str | None = None,
        operation_type: str | None = None,
        search: str | None = None,
    ) -> int:
        parameters = {
            "sponsor": sponsor_id,
            "status": status,
            "kind": operation_type,
            "search": search,
        }
        return int(self._query("history_count", parameters)[0][0])

    def job_operations(
        self,
        sponsor_id: int,
        *,
        prefix: str,
        statuses: list[str],
        limit: int,
        offset: int,
    ) -> tuple[list[JobOperationRow], int]:
        """A page of the sponsor's job operations whose type starts with ``prefix`` (in
        ``statuses``, or all), newest first, and how many there are in all."""
        scope = {"sponsor": sponsor_id, "prefix": prefix, "statuses": statuses}
        rows = self._query("job_operations", {**scope, "limit": limit, "offset": offset})
        total = int(self._query("job_operations_count", scope)[0][0])
        page = [
            JobOperationRow(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                int(r[3]),
                int(r[4]),
                int(r[5]),
                utc(r[6]) or datetime.now(UTC),
                utc(r[7]),
            )
            for r in rows
        ]
        return page, total

    def items_page(
        self,
        sponsor_id: int,
        operation_id: str,
        *,
        after_index: int,
        limit: int,
        status: str | None = None,
    ) -> list[tuple[Any, ...]]:
        rows = self._query(
            "items_page",
            {
                "sponsor": sponsor_id,
                "operation": operation_id,
                "after": after_index,
                "limit": limit,
                "status": status,
            },
        )
        return [(*row[:9], utc(row[9]), *row[10:]) for row in rows]

    def all_items(
        self, sponsor_id: int, operation_id: str, *, page_size: int = 10_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Every item of an operation as ``items_page`` rows, a page at a time (by key, so
        memory stays one page whatever the operation's size)."""
        after = 0
        while True:
            page = self.items_page(sponsor_id, operation_id, after_index=after, limit=page_size)
            if page:
                yield page
            if len(page) < page_size:
                return
            after = int(page[-1][0]) + 1

    def aggregates(self, sponsor_id: int, operation_id: str) -> dict[str, Any]:
        """Per-operation figures: items by status and by error code, cost, durations."""
        scope = {"sponsor": sponsor_id, "operation": operation_id}
        items, cost, attempts, avg_ms, p50, p95, max_ms, first, last = self._query(
            "agg_totals", scope
        )[0]
        return {
            "items": int(items),
            "byStatus": {str(s): int(n) for s, n in self._query("agg_status", scope)},
            "byError": [
                {
                    "errorCode": code,
                    "errorCategory": category,
                    "count": int(n),
                    "retryable": int(retryable),
                }
                for code, category, n, retryable in self._query("agg_errors", scope)
            ],
            "totalCost": round(float(cost or 0), 6),
            "attempts": int(attempts or 0),
            "processingMs": {
                "average": round(float(avg_ms or 0), 3),
                "p50": round(float(p50 or 0), 3),
                "p95": round(float(p95 or 0), 3),
                "max": round(float(max_ms or 0), 3),
            },
            "firstProcessedAt": utc(first) if items else None,
            "lastProcessedAt": utc(last) if items else None,
        }

    def codes_page(
        self, sponsor_id: int, operation_id: str, *, after_index: int, limit: int
    ) -> list[tuple[int, str, int, str | None, datetime]]:
        rows = self._query(
            "codes_page",
            {
                "sponsor": sponsor_id,
                "operation": operation_id,
                "after": after_index,
                "limit": limit,
            },
        )
        return [(r[0], r[1], r[2], r[3], utc(r[4])) for r in rows]  # type: ignore[misc]

    def code_counts(self, sponsor_id: int, operation_id: str) -> CodeCounts:
        row = self._query("code_counts", {"sponsor": sponsor_id, "operation": operation_id})[0]
        return CodeCounts(items=int(row[0]), unique_codes=int(row[1]), rows=int(row[2]))

    def item_counts(self, sponsor_id: int, operation_id: str) -> dict[str, int]:
        rows = self._query("item_counts", {"sponsor": sponsor_id, "operation": operation_id})
        return {str(status): int(count) for status, count in rows}

    def last_success_at(self, sponsor_id: int, operation_id: str) -> datetime | None:
        """When the operation's last successful item was processed (None: none was)."""
        rows = self._query("last_success", {"sponsor": sponsor_id, "operation": operation_id})
        moment = rows[0][0] if rows else None
        if not isinstance(moment, datetime) or moment.year <= 1970:  # max() of no rows
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def statistics(self, sponsor_id: int | None, *, since: datetime, tz: str) -> dict[str, Any]:
        """Dashboard figures (the seed's ``/statistics``), from the statistics rollup, and
        ``as_of``: when the rollup was last recomputed (``None`` before its first time)."""
        scope = {"sponsor": sponsor_id}
        totals = self._query("stat_totals", scope)[0]
        recent = self._query("stat_recent", {**scope, "since": since})[0]
        days = self._query("stat_days", {**scope, "since": since})
        channels = self._query("stat_channels", scope)
        hours = self._query("stat_hours", {**scope, "tz": tz})
        return {
            "totals": totals,
            "recent": recent,
            "days": days,
            "channels": channels,
            "hours": hours,
            "as_of": utc(self._query("stat_as_of", {})[0][0]),
        }

    def refresh_statistics(self) -> None:
        """Recompute the statistics rollups now and wait for them (for tests and after a bulk
        load; by themselves they refresh every 10 seconds)."""
        for step in ("refresh", "wait"):
            for rollup in ("daily", "hourly"):
                self._connection.execute(_SQL[f"{step}_statistics_{rollup}"], {})

    def failed_items(
        self, sponsor_id: int, operation_id: str, *, code: str | None, category: str | None
    ) -> list[tuple[int, bool]]:
        rows = self._query(
            "failed",
            {"sponsor": sponsor_id, "operation": operation_id, "code": code, "category": category},
        )
        return [(int(index), bool(retryable)) for index, retryable in rows]

    def recipients(
        self, sponsor_id: int, operation_id: str, indexes: list[int]
    ) -> list[tuple[int, str, str, str, str, str]]:
        found: list[tuple[int, str, str, str, str, str]] = []
        for start in range(0, len(indexes), 10_000):
            rows = self._query(
                "recipients",
                {
                    "sponsor": sponsor_id,
                    "operation": operation_id,
                    "indexes": indexes[start : start + 10_000],
                },
            )
            found.extend((int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows)
        return found

    def duplicate_codes(self) -> int:
        """Codes stored for more than one item anywhere in the system (should be 0)."""
        return int(self._query("duplicate_codes", {})[0][0])
