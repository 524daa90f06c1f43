"""The marketplace's own database (SQLite): inventory items, listings, push devices and the
notifications it sent, each row owned by a tenant (the Bulkops sponsor id).

Every change is recorded under the item id Bulkops gave it, with what the job answered: a
job delivered again (at least once) gets the same answer and changes nothing twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from examples.sqlite import Refused, SqliteStore

__all__ = ["Change", "MarketplaceStore", "Refused", "now"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inventory (
    tenant INTEGER NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    price REAL NOT NULL,
    image_url TEXT,
    PRIMARY KEY (tenant, sku)
);
CREATE TABLE IF NOT EXISTS image_cleanups (
    tenant INTEGER NOT NULL,
    image_url TEXT NOT NULL,
    removed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS listings (
    tenant INTEGER NOT NULL,
    listing_id TEXT NOT NULL,
    title TEXT NOT NULL,
    price REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    sku TEXT,
    PRIMARY KEY (tenant, listing_id)
);
CREATE TABLE IF NOT EXISTS devices (
    token TEXT PRIMARY KEY,
    tenant INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pushes (
    token TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs_done (
    item_id TEXT PRIMARY KEY,
    job_type TEXT NOT NULL,
    answer TEXT NOT NULL,
    done_at TEXT NOT NULL
);
"""


Change = Callable[[sqlite3.Connection], dict[str, Any]]


class MarketplaceStore(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def done(self, item_id: str) -> dict[str, Any] | None:
        """What the job of ``item_id`` answered, if it was done before."""
        with self._lock:
            row = self._db.execute(
                "SELECT answer FROM jobs_done WHERE item_id = ?", (item_id,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def once(self, item_id: str, job_type: str, change: Change) -> dict[str, Any]:
        """Run ``change`` in one transaction with the record that it ran, unless it ran."""
        with self._lock:
            row = self._db.execute(
                "SELECT answer FROM jobs_done WHERE item_id = ?", (item_id,)
            ).fetchone()
            if row is not None:
                return dict(json.loads(row[0]))
            with self._transaction() as db:
                answer = change(db)
                db.execute(
                    "INSERT INTO jobs_done (item_id, job_type, answer, done_at) "
                    "VALUES (?, ?, ?, ?)",
                    (item_id, job_type, json.dumps(answer), now()),
                )
            return answer

    def seed(self, tenant: int, *, skus: Iterable[str] = (), devices: Iterable[str] = ()) -> None:
        """Demo inventory and push devices of ``tenant`` (kept if they exist)."""
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO inventory (tenant, sku, name, quantity, price) "
                "VALUES (?, ?, ?, 10, 100)",
                [(tenant, sku, f"Item {sku}") for sku in skus],
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO devices (token, tenant) VALUES (?, ?)",
                [(token, tenant) for token in devices],
            )

    def inventory(self, tenant: int) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sku, name, quantity, price, image_url FROM inventory WHERE tenant = ?",
                (tenant,),
            ).fetchall()
        keys = ("name", "quantity", "price", "imageUrl")
        return {str(r[0]): dict(zip(keys, r[1:], strict=True)) for r in rows}

    def listings(self, tenant: int) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT listing_id, title, price, status, sku FROM listings WHERE tenant = ?",
                (tenant,),
            ).fetchall()
        keys = ("title", "price", "status", "sku")
        return {str(r[0]): dict(zip(keys, r[1:], strict=True)) for r in rows}

    def counts(self) -> dict[str, int]:
        """How many jobs of each type were done (a job delivered twice counts once)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_type, count(*) FROM jobs_done GROUP BY job_type"
            ).fetchall()
        return {str(t): int(n) for t, n in rows}

    def pushes(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute("SELECT token, title FROM pushes ORDER BY rowid").fetchall()
        return [(str(t), str(title)) for t, title in rows]

    def image_cleanups(self, tenant: int) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT image_url FROM image_cleanups WHERE tenant = ? ORDER BY rowid", (tenant,)
            ).fetchall()
        return [str(r[0]) for r in rows]


def now() -> str:
    return datetime.now(UTC).isoformat()
