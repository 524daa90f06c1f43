"""The ticket service's own database (SQLite): tickets, their comments, and every change.

Bulkops never reads or writes it. A ticket belongs to a tenant (the Bulkops sponsor id); a
*restricted* ticket may not be changed through bulk operations at all ("Insufficient
permissions…"), which is how the demo and the tests get per-ticket refusals. Every applied
change is recorded under the item id Bulkops gave it: a change delivered again (at least
once) is recognised and not applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from examples.sqlite import Refused, SqliteStore

__all__ = ["Change", "Refused", "TicketStore"]

STATUSES = ("open", "in_progress", "pending", "resolved", "closed")
PRIORITIES = ("low", "medium", "high", "urgent")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY,
    tenant INTEGER NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    priority TEXT NOT NULL DEFAULT 'medium',
    category TEXT NOT NULL DEFAULT 'general',
    assignee_id INTEGER,
    restricted INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS comments (
    ticket_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    item_id TEXT PRIMARY KEY,
    ticket_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Change:
    action: str
    ticket_id: int
    tenant: int
    item_id: str
    data: dict[str, Any]


class TicketStore(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def seed(self, tenant: int, ids: Iterable[int], *, restricted_every: int = 0) -> None:
        """Demo tickets of ``tenant`` (kept if they exist); every ``restricted_every``-th id is
        restricted."""
        rows = [
            (i, tenant, f"Ticket {i}", int(bool(restricted_every) and i % restricted_every == 0))
            for i in ids
        ]
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO tickets (id, tenant, title, restricted) VALUES (?, ?, ?, ?)",
                rows,
            )

    def apply(self, change: Change) -> dict[str, Any]:
        """Make the change once (by its item id); the ticket as it now is."""
        with self._lock:
            ticket = self._db.execute(
                "SELECT tenant, restricted, deleted FROM tickets WHERE id = ?", (change.ticket_id,)
            ).fetchone()
            if ticket is None or ticket[2]:
                raise Refused("TICKET_NOT_FOUND", f"Ticket {change.ticket_id} does not exist")
            if ticket[0] != change.tenant or ticket[1]:
                raise Refused(
                    "FORBIDDEN", f"Insufficient permissions to update ticket {change.ticket_id}"
                )
            done = self._db.execute(
                "SELECT 1 FROM changes WHERE item_id = ?", (change.item_id,)
            ).fetchone()
            if done is None:
                with self._transaction() as db:
                    self._change(change)
                    db.execute(
                        "INSERT INTO changes (item_id, ticket_id, action, applied_at) "
                        "VALUES (?, ?, ?, ?)",
                        (change.item_id, change.ticket_id, change.action, _now()),
                    )
            return self.ticket(change.ticket_id) or {"id": change.ticket_id, "deleted": True}

    def _change(self, change: Change) -> None:
        data, ticket = change.data, change.ticket_id
        if change.action == "add_comment":
            self._db.execute(
                "INSERT INTO comments (ticket_id, body, created_at) VALUES (?, ?, ?)",
                (ticket, data["comment"], _now()),
            )
        elif change.action == "delete":
            self._db.execute("UPDATE tickets SET deleted = 1 WHERE id = ?", (ticket,))
        else:
            column, key = _COLUMNS[change.action]
            self._db.execute(f"UPDATE tickets SET {column} = ? WHERE id = ?", (data[key], ticket))  # noqa: S608 - a fixed column

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT id, status, priority, category, assignee_id, deleted FROM tickets WHERE id = ?",
            (ticket_id,),
        ).fetchone()
        if row is None or row[5]:
            return None
        keys = ("ticket_id", "status", "priority", "category", "assignee_id")
        return dict(zip(keys, row[:5], strict=True))

    def change_counts(self) -> dict[int, int]:
        """How often each ticket was changed (a change delivered twice counts once)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT ticket_id, count(*) FROM changes GROUP BY ticket_id"
            ).fetchall()
        return {int(t): int(n) for t, n in rows}

    def statuses(self) -> dict[int, str]:
        with self._lock:
            rows = self._db.execute("SELECT id, status FROM tickets").fetchall()
        return {int(t): str(s) for t, s in rows}


# The column each single-field action sets, and the operation_data key it takes it from.
_COLUMNS = {
    "update_status": ("status", "status"),
    "assign": ("assignee_id", "assignee_id"),
    "update_priority": ("priority", "priority"),
    "update_category": ("category", "category"),
}


def _now() -> str:
    return datetime.now(UTC).isoformat()
