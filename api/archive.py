"""Snapshots of operations that left the status topic, read from ClickHouse and kept.

An archived snapshot never changes, so each is read once and then served from a bounded
cache. Reads that miss the cache at the same time share one query: while a query runs,
the ids asked for meanwhile wait and go together in the next one. A burst of status polls
for a thousand old operations is then a handful of queries instead of a thousand, and a
flood of unknown ids costs at most one query in flight.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from schemas.status import OperationSnapshot

log = logging.getLogger("bulkops.api.status")

ReadMany = Callable[[Sequence[str]], dict[str, OperationSnapshot]]


class ArchiveReads:
    """A bounded cache of archived snapshots in front of a batch read; thread-safe."""

    def __init__(self, read_many: ReadMany, *, cache_size: int = 4096, max_batch: int = 500):
        self._read_many = read_many
        self._cache: OrderedDict[str, OperationSnapshot] = OrderedDict()
        self._cache_size = cache_size
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: dict[str, asyncio.Future[OperationSnapshot | None]] = {}
        self._reading: asyncio.Task[None] | None = None

    def cached(self, operation_id: str) -> OperationSnapshot | None:
        """The snapshot if it was read lately; never reads."""
        with self._lock:
            snapshot = self._cache.get(operation_id)
            if snapshot is not None:
                self._cache.move_to_end(operation_id)
            return snapshot

    def drop(self, operation_id: str) -> None:
        """The operation is live again (a refused one submitted anew): its copy is stale."""
        with self._lock:
            self._cache.pop(operation_id, None)

    def read(self, operation_id: str) -> OperationSnapshot | None:
        """Blocking: the cached snapshot, or one query for it (call it off the event loop)."""
        snapshot = self.cached(operation_id)
        if snapshot is None:
            snapshot = self._read([operation_id]).get(operation_id)
        return snapshot

    async def find(self, operation_id: str) -> OperationSnapshot | None:
        """The cached snapshot, or the result of the next batch read that includes it.

        Bound to the loop that calls it first (the API's one loop)."""
        snapshot = self.cached(operation_id)
        if snapshot is not None:
            return snapshot
        future = self._pending.get(operation_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            self._pending[operation_id] = future
            if self._reading is None:
                self._reading = asyncio.create_task(self._drain())
        # Shielded: one caller that gives up must not cancel the answer for the others.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._pending:
                ids = list(self._pending)[: self._max_batch]
                futures = [self._pending.pop(i) for i in ids]
                try:
                    found = await asyncio.to_thread(self._read, ids)
                except Exception as error:  # every waiter gets the failure, none hangs
                    log.warning("reading %d archived snapshots failed: %s", len(ids), error)
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for operation_id, future in zip(ids, futures, strict=True):
                    if not future.done():
                        future.set_result(found.get(operation_id))
        finally:
            self._reading = None

    def _read(self, ids: Sequence[str]) -> dict[str, OperationSnapshot]:
        found = self._read_many(ids)
        with self._lock:
            for operation_id, snapshot in found.items():
                self._cache[operation_id] = snapshot
                self._cache.move_to_end(operation_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return found


def _retrieve(future: asyncio.Future[OperationSnapshot | None]) -> None:
    """Mark a failure as seen: the callers that waited for it may all have given up."""
    if not future.cancelled():
        future.exception()
