"""Right to erasure (GDPR art. 17, KVKK art. 7): remove one person's address everywhere.

The address is matched as stored: phone numbers in E.164, e-mail addresses normalised (the
API normalises what it is given the same way). Kafka topics hold recipient chunks until their
retention ends; the topics' retention bounds that (docs/analytics.md, "Retention").
"""

from __future__ import annotations

from analytics import sql
from analytics.connection import Connection

_SQL = sql.load("erasure.sql")
TABLES = tuple(name.removeprefix("count_") for name in _SQL if name.startswith("count_"))


def erase(connection: Connection, address: str) -> dict[str, int]:
    """Rows removed per table (tables without the address are listed with 0)."""
    removed = {}
    for table in TABLES:
        with connection.write_lock:  # nothing of it is written between the count and the delete
            found = int(connection.query(_SQL[f"count_{table}"], {"address": address})[0][0])
            if found:
                connection.execute(_SQL[f"erase_{table}"], {"address": address})
        removed[table] = found
    return removed
