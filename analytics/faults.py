"""Injected ClickHouse write failures, for fault tests and drills (never in production).

While the trigger file exists, every insert through the wrapped client fails, alternately
*before* it reaches ClickHouse and *after* it has landed: the second is a connection that
drops while the answer is on its way, where the caller cannot know the write happened. The
worker must treat both alike (back off, retry, acknowledge nothing meanwhile) and its rows
must still come out exact, since a retried insert writes the same keys again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

log = logging.getLogger("bulkops.analytics")


class WriteFaults:
    """A clickhouse-connect client whose inserts fail while ``trigger`` exists."""

    def __init__(self, client: Client, trigger: Path) -> None:
        self._client = client
        self._trigger = trigger
        self.injected = 0
        log.warning("ClickHouse write faults armed: inserts fail while %s exists", trigger)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def insert(self, table: str, data: Sequence[Any], **kwargs: Any) -> Any:
        return self._faulted(table, lambda: self._client.insert(table, data, **kwargs))

    def insert_arrow(self, table: str, arrow_table: Any, **kwargs: Any) -> Any:
        return self._faulted(table, lambda: self._client.insert_arrow(table, arrow_table, **kwargs))

    def _faulted(self, table: str, insert: Callable[[], Any]) -> Any:
        """Every other faulted insert is refused; the others land and lose their answer."""
        if not self._trigger.exists():
            return insert()
        self.injected += 1
        if self.injected % 2 == 0:
            insert()
            raise OperationalError(
                f"injected fault: the insert into {table} landed, its answer lost"
            )
        raise OperationalError(f"injected fault: the insert into {table} was refused")
