"""Per-operation rows written a little later, many at once.

ClickHouse wants few large inserts. The rows an operation makes as it changes state (its
request as submitted, its row at registration and at the end, its archived snapshot) are
one row each, and one insert per row costs far more than handling the event that made it:
with thousands of small operations those inserts were most of the worker's time. They
wait here and go in one insert per table every ``write_behind_seconds``, or as soon as
``write_behind_max_rows`` are waiting.

Nothing is lost on a crash: an event is acknowledged only once every row buffered before it
was handled is stored (:meth:`WriteBehind.release`), so what was not written is replayed
from Kafka, and the handlers write their rows again on a replay (the tables collapse
duplicates on merge). Item rows do not come here: the sink stores them in bulk before it
announces a batch, so an operation is ``Completed`` only when its items can be queried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from analytics.rows import TableRows
from core.metrics import WRITE_BEHIND_ROWS

log = logging.getLogger("bulkops.worker")

Store = Callable[[Sequence[TableRows]], Awaitable[None]]
Then = Callable[[], Awaitable[Any]]


class WriteBehind:
    """A buffer of rows, its flusher, and the acknowledgements that wait for it.

    ``interval`` 0 writes every row at once (what unit tests of single handlers want).
    """

    def __init__(self, store: Store, *, interval: float, max_rows: int) -> None:
        self._store = store
        self.interval = interval
        self.max_rows = max_rows
        self._tables: list[TableRows] = []
        self._rows = 0
        self._after: list[Then] = []
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def waiting(self) -> int:
        """Rows not yet written."""
        return self._rows

    async def later(
        self, table: TableRows, then: Then | None = None, *, soon: bool = False
    ) -> None:
        """Write ``table``'s rows with the next flush; ``then`` runs once they are stored.

        ``soon``: someone waits for these rows (a final snapshot is held back until its row
        is stored), so the flush comes at once; rows added while an insert runs still
        share the next one.
        """
        if self.interval <= 0:
            await self._store([table])
            if then is not None:
                await then()
            return
        self._tables.append(table)
        self._rows += len(table)
        WRITE_BEHIND_ROWS.inc(len(table))
        if then is not None:
            self._after.append(then)
        if soon or self._rows >= self.max_rows:
            self._full.set()

    async def release(self, ack: Then) -> None:
        """Acknowledge an event once the rows buffered so far are stored (at once if none)."""
        if self._tables:
            self._after.append(ack)
        else:
            await ack()

    async def flush(self) -> int:
        """Write what is waiting, then run what waited for it; returns the rows written."""
        async with self._lock:
            tables, after = self._tables, self._after
            self._tables, self._after, self._rows = [], [], 0
            self._full.clear()
            written = sum(len(t) for t in tables)
            if tables:
                await self._store(tables)
                WRITE_BEHIND_ROWS.dec(written)
            for then in after:
                try:
                    await then()
                except Exception:
                    log.exception("write-behind: what waited for a flush failed")
            return written

    async def run(self) -> None:
        """Flush every ``interval`` (sooner when full) until cancelled; a last flush then."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.interval)
                await self.flush()
        finally:
            if self._tables:
                log.info("write-behind: storing %d rows before stopping", self._rows)
                await asyncio.shield(self.flush())
