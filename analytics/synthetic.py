"""Synthetic history: finished operations of every kind, written by ClickHouse itself.

For benchmarks (``benchmarks/statistics_latency.py`` stores 10,000,000 items in about a
minute), the tests that run ``docs/analytics.md``'s queries, and demos. The rows are shaped
like the worker's (same tables, statuses, error codes, prices) and deterministic per seed;
operation ids start with ``synth_<seed>_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics import sql
from analytics.connection import Connection

_SQL = sql.load("synthetic.sql")
DEFAULT_SIZES = (10, 100, 1000, 5000)


@dataclass(frozen=True)
class SyntheticHistory:
    operations: int
    sponsors: int
    since: datetime
    days: int = 30
    seed: int = 1
    sizes: tuple[int, ...] = DEFAULT_SIZES

    @classmethod
    def of_items(
        cls, items: int, *, sizes: tuple[int, ...] = DEFAULT_SIZES, **fields: Any
    ) -> SyntheticHistory:
        """About ``items`` processed items, operation sizes cycling through ``sizes``."""
        # Cancelled operations (2 %) processed half of their items.
        average = sum(sizes) / len(sizes) * 0.99
        return cls(operations=max(len(sizes), round(items / average)), sizes=sizes, **fields)

    def write(self, connection: Connection) -> None:
        parameters = {
            "seed": self.seed,
            "operations": self.operations,
            "sponsors": self.sponsors,
            "since": self.since,
            "days": self.days,
            "sizes": list(self.sizes),
        }
        for statement in _SQL.values():
            connection.execute(statement, parameters)
