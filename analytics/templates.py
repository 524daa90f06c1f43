"""Message templates saved by sponsors (the seed's templates are in ``schemas``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from analytics import sql
from analytics.connection import Connection
from analytics.rows import TEMPLATE_COLUMNS

_SQL = sql.load("templates.sql")


class Templates:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def save(
        self,
        sponsor_id: int,
        *,
        name: str,
        channel: str,
        message: str,
        batch_size: int,
        max_concurrency: int,
        retry_attempts: int,
    ) -> None:
        row = [
            sponsor_id,
            name,
            channel,
            message,
            batch_size,
            max_concurrency,
            retry_attempts,
            datetime.now(UTC),
        ]
        self._connection.insert("templates", [row], TEMPLATE_COLUMNS)

    def list(self, sponsor_id: int) -> list[tuple[Any, ...]]:
        """(name, channel, message, batch size, max concurrency, retries, updated at), by name."""
        return self._connection.query(_SQL["templates"], {"sponsor": sponsor_id})
