"""Answers remembered for Idempotency-Keys: the first successful answer per sponsor, route
and key, kept a day (the table's TTL), so a repeated request gets it back after an API
restart too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from analytics import sql
from analytics.connection import Connection

_SQL = sql.load("idempotency.sql")
COLUMNS = (
    "sponsor_id",
    "scope",
    "idempotency_key",
    "request_hash",
    "status_code",
    "response",
    "created_at",
)


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: str
    status_code: int
    response: str


class IdempotencyKeys:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def find(self, sponsor_id: int, scope: str, key: str) -> StoredAnswer | None:
        rows = self._connection.query(
            _SQL["first_answer"], {"sponsor": sponsor_id, "scope": scope, "key": key}
        )
        if not rows:
            return None
        request_hash, status_code, response = rows[0]
        return StoredAnswer(str(request_hash), int(status_code), str(response))

    def remember(self, sponsor_id: int, scope: str, key: str, answer: StoredAnswer) -> None:
        row = [
            sponsor_id,
            scope,
            key,
            answer.request_hash,
            answer.status_code,
            answer.response,
            datetime.now(UTC),
        ]
        self._connection.insert("idempotency_keys", [row], COLUMNS)
