"""The API's live views, fed by compacted topics: operation status, and sponsor quotas.

A follower reads each topic from the beginning on start (no consumer group, no commits), so
an API that restarts rebuilds every operation's latest snapshot (and every sponsor's quota)
before it answers; after that it follows the topics. Snapshots carry a ``version``; the
status view keeps the newest. Coroutines can wait for a change (a submit waiting for the
worker's verdict on its quota): the follower's thread wakes them on their own loop.

The status topic holds running and recently finished operations only: the worker archives a
finished operation's last snapshot in ClickHouse and then sends a tombstone, and the view
lets it go. :meth:`StatusView.find` answers for such an operation from the archive
(:mod:`api.archive`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from pydantic import ValidationError

from api.archive import ArchiveReads, ReadMany
from core.kafkalog import client_logger
from schemas.quotas import QuotaSnapshot
from schemas.status import OperationSnapshot

log = logging.getLogger("bulkops.api.status")


class Waiters:
    """Coroutines waiting for a key to change, woken from any thread."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._lock = threading.Lock()

    def wake(self, key: str) -> None:
        with self._lock:
            waiting = self._waiting.pop(key, [])
        for loop, future in waiting:
            loop.call_soon_threadsafe(_resolve, future)

    async def until(self, key: str, done: Callable[[], bool], seconds: float) -> bool:
        """Wait up to ``seconds`` until ``done()`` holds (checked on every change of ``key``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            future: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._waiting.setdefault(key, []).append((loop, future))
            if done():
                self._forget(key, future)
                return True
            left = deadline - loop.time()
            if left <= 0:
                self._forget(key, future)
                return False
            try:
                await asyncio.wait_for(future, left)
            except TimeoutError:
                self._forget(key, future)
                return done()

    def _forget(self, key: str, future: asyncio.Future[None]) -> None:
        with self._lock:
            waiting = self._waiting.get(key, [])
            self._waiting[key] = [(lp, f) for lp, f in waiting if f is not future]
            if not self._waiting[key]:
                del self._waiting[key]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class StatusView:
    """In-memory latest snapshot per live operation id, in front of the archive of those that
    left the status topic; thread-safe."""

    def __init__(self, archive: ReadMany | None = None, archive_cache_size: int = 4096) -> None:
        self._snapshots: dict[str, OperationSnapshot] = {}
        self._archive = (
            None if archive is None else ArchiveReads(archive, cache_size=archive_cache_size)
        )
        self._lock = threading.Lock()
        self._waiters = Waiters()
        self.ready = threading.Event()

    def apply(self, snapshot: OperationSnapshot) -> None:
        with self._lock:
            current = self._snapshots.get(snapshot.operation_id)
            if current is None or (snapshot.version, snapshot.last_updated) >= (
                current.version,
                current.last_updated,
            ):
                self._snapshots[snapshot.operation_id] = snapshot
        if self._archive is not None:
            self._archive.drop(snapshot.operation_id)
        self._waiters.wake(snapshot.operation_id)

    def apply_json(self, value: bytes) -> None:
        self.apply(OperationSnapshot.model_validate_json(value))

    def forget(self, key: bytes) -> None:
        """A tombstone: the operation was archived and left the status topic."""
        with self._lock:
            self._snapshots.pop(key.decode(errors="replace"), None)

    def known(self, operation_id: str) -> OperationSnapshot | None:
        """The live snapshot, or an archived one read lately; never blocks."""
        with self._lock:
            snapshot = self._snapshots.get(operation_id)
        if snapshot is None and self._archive is not None:
            snapshot = self._archive.cached(operation_id)
        return snapshot

    async def find(self, operation_id: str) -> OperationSnapshot | None:
        """:meth:`lookup` for coroutines: from memory on the loop; misses of the moment share
        one ClickHouse read, in a thread."""
        snapshot = self.known(operation_id)
        if snapshot is None and self._archive is not None:
            snapshot = await self._archive.find(operation_id)
        return snapshot

    def lookup(self, operation_id: str) -> OperationSnapshot | None:
        """The live snapshot, or else the archived one (blocking: a ClickHouse read on a
        cache miss; call it off the event loop)."""
        snapshot = self.known(operation_id)
        if snapshot is None and self._archive is not None:
            snapshot = self._archive.read(operation_id)
        return snapshot

    async def registered(self, operation_id: str, seconds: float) -> OperationSnapshot | None:
        """The operation's snapshot once the worker has registered (or refused) it; None if
        that does not happen within ``seconds``."""
        return await self.until(operation_id, lambda snapshot: snapshot.version >= 1, seconds)

    async def until(
        self,
        operation_id: str,
        holds: Callable[[OperationSnapshot], bool],
        seconds: float,
    ) -> OperationSnapshot | None:
        """The operation's live snapshot once ``holds`` is true of it (woken by each new
        snapshot, not polled); None if that does not happen within ``seconds``."""

        def seen() -> bool:
            snapshot = self.get(operation_id)
            return snapshot is not None and holds(snapshot)

        if await self._waiters.until(operation_id, seen, seconds):
            return self.get(operation_id)
        return None

    def get(self, operation_id: str) -> OperationSnapshot | None:
        with self._lock:
            return self._snapshots.get(operation_id)

    def running_retry_of(self, operation_id: str) -> OperationSnapshot | None:
        """A retry of ``operation_id`` that has not finished, if one exists."""
        with self._lock:
            for snapshot in self._snapshots.values():
                if snapshot.retry_of == operation_id and not snapshot.status.is_terminal:
                    return snapshot
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._snapshots)

    def visible(self, sponsor_id: int | None) -> list[OperationSnapshot]:
        """The live snapshots of one sponsor's operations (None: every sponsor's)."""
        with self._lock:
            return [
                s
                for s in self._snapshots.values()
                if sponsor_id is None or s.sponsor_id == sponsor_id
            ]

    def counts(self) -> Counter[tuple[str, str]]:
        """Live operations per (operation type, status)."""
        with self._lock:
            return Counter(
                (s.operation_type.value, s.status.value) for s in self._snapshots.values()
            )


class QuotaView:
    """The latest quota snapshot of each sponsor, and the default overrides; thread-safe."""

    def __init__(self) -> None:
        self._sponsors: dict[int, QuotaSnapshot] = {}
        self._defaults: QuotaSnapshot | None = None
        self._lock = threading.Lock()
        self._waiters = Waiters()

    def apply(self, snapshot: QuotaSnapshot) -> None:
        with self._lock:
            if snapshot.sponsor_id is None:
                self._defaults = _newer(self._defaults, snapshot)
            else:
                current = self._sponsors.get(snapshot.sponsor_id)
                self._sponsors[snapshot.sponsor_id] = _newer(current, snapshot)
        self._waiters.wake(_quota_key(snapshot.sponsor_id))

    def apply_json(self, value: bytes) -> None:
        self.apply(QuotaSnapshot.model_validate_json(value))

    def forget(self, key: bytes) -> None:
        """Quota snapshots are never deleted: a tombstone here is someone else's mistake."""
        log.warning("quota view: ignoring a tombstone for %r", key)

    def sponsor(self, sponsor_id: int) -> QuotaSnapshot | None:
        with self._lock:
            return self._sponsors.get(sponsor_id)

    def defaults(self) -> QuotaSnapshot | None:
        with self._lock:
            return self._defaults

    async def applied(self, sponsor_id: int | None, update_id: str, seconds: float) -> bool:
        """Whether the worker applied update ``update_id`` within ``seconds``."""

        def seen() -> bool:
            snapshot = self.defaults() if sponsor_id is None else self.sponsor(sponsor_id)
            return snapshot is not None and update_id in snapshot.update_ids

        return await self._waiters.until(_quota_key(sponsor_id), seen, seconds)


def _quota_key(sponsor_id: int | None) -> str:
    return "defaults" if sponsor_id is None else str(sponsor_id)


def _newer(current: QuotaSnapshot | None, snapshot: QuotaSnapshot) -> QuotaSnapshot:
    if current is None or snapshot.updated_at >= current.updated_at:
        return snapshot
    return current


class Feed(Protocol):
    """A view that takes a topic's messages."""

    def apply_json(self, value: bytes) -> None: ...

    def forget(self, key: bytes) -> None: ...


class KafkaViewFollower:
    """Feeds views from their compacted topics in a background thread; ``ready`` is set once
    every partition of every topic has been read to its end."""

    def __init__(self, bootstrap: str, feeds: dict[str, Feed], ready: threading.Event) -> None:
        self._feeds = feeds
        self._ready = ready
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bulkops-api-status-view",  # required by librdkafka; never committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "logger": client_logger("status-view"),
            }
        )
        self._pending_eof: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bulkops-status-view", daemon=True)

    def start(self) -> None:
        partitions: list[TopicPartition] = []
        for name in self._feeds:
            metadata = self._consumer.list_topics(name, timeout=10)
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                raise KafkaException(f"topic {name} is missing: run `bulkops topics`")
            partitions += [TopicPartition(name, p, OFFSET_BEGINNING) for p in topic.partitions]
        self._pending_eof = {(tp.topic, tp.partition) for tp in partitions}
        self._consumer.assign(partitions)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        # Until the views have caught up, only the last message of each key is kept, and
        # applied once at the end: a status topic holds many versions of each operation
        # (its active segment is never compacted), and parsing only the last ones makes a
        # restart after a busy day take seconds instead of minutes.
        backlog: dict[tuple[str, bytes], Message] | None = {}
        while not self._stop.is_set():
            for message in self._consumer.consume(500, 0.2):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("status view: %s", error)
                        continue
                    self._pending_eof.discard((message.topic() or "", message.partition() or 0))
                    if not self._pending_eof and backlog is not None:
                        for kept in backlog.values():
                            self._apply(kept)
                        backlog = None
                        log.info("views caught up in %.2fs", time.monotonic() - started)
                        self._ready.set()
                    continue
                key = message.key()
                if backlog is None or key is None:
                    self._apply(message)
                else:  # moved to the end: applied in the order of each key's last write
                    backlog.pop((message.topic() or "", key), None)
                    backlog[(message.topic() or "", key)] = message

    def _apply(self, message: Message) -> None:
        feed, value = self._feeds[message.topic() or ""], message.value()
        try:
            if value is None:
                feed.forget(message.key() or b"")
            else:
                feed.apply_json(value)
        except ValidationError as exc:
            log.warning(
                "%s: skipping malformed message at offset %s: %s",
                message.topic(),
                message.offset(),
                exc,
            )

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()
