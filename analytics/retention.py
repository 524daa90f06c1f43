"""How long ClickHouse keeps what: one TTL per table, from the settings.

Results (operations, requests, items, codes once expired, the code ledger) are kept long, for
statistics and audits; personal data (recipients' addresses and rendered messages, dealer
invitations, item batches, which carry recipients) short. A TTL is changed only when it
differs from what the table has: changing it rewrites the TTL information of every part.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics import sql
from analytics.connection import Connection

PERSONAL_TABLES = frozenset({"recipients", "dealer_invitations", "item_batches"})
# Item batches are also what a paused or scheduled send resumes from: kept at least this long.
HELD_BATCH_DAYS = 60


@dataclass(frozen=True)
class Retention:
    results_days: int = 400
    personal_days: int = 30

    def days_for(self, table: str) -> int:
        if table == "item_batches":
            return max(self.personal_days, HELD_BATCH_DAYS)
        return self.personal_days if table in PERSONAL_TABLES else self.results_days


def apply(connection: Connection, retention: Retention) -> list[str]:
    """Set each table's TTL to ``retention``; returns the tables that changed."""
    statements = sql.load("retention.sql")
    changed = []
    for table, statement in statements.items():
        if table == "ttl_days":
            continue
        days = retention.days_for(table)
        current = connection.query(statements["ttl_days"], {"table": table})
        if current and current[0][0] == days:
            continue
        connection.execute(statement, {"days": days})
        changed.append(table)
    return changed
