"""The worker's Faust tables, behind small typed wrappers.

Every table holds plain JSON documents (``operations`` the whole :class:`OperationState` of
each operation, so one changelog write carries its counts and bitmaps together). The wrappers
take any mutable mapping: a Faust table in the worker, a dict in unit tests.

**No await between load and save.** Every agent writes ``operations``; a state loaded, then
held across an ``await`` and saved afterwards would overwrite what others wrote meanwhile.
Load, change and save in one synchronous step, and load again after any await.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import faust
from pydantic import BaseModel, Field

from core.topics import WORKER_TABLES
from schemas.common import OperationStatus
from schemas.messages import ControlAction, OperationRequested
from schemas.quotas import QuotaUse
from streams.progress import OperationState

# Table values are the model's JSON, keyed by alias: what the indexes read without parsing.
HELD_COUNT = OperationState.model_fields["held_count"].alias or "heldCount"
WEBHOOK_STATE = OperationState.model_fields["webhook_state"].alias or "webhookState"
COMPLETED_AT = OperationState.model_fields["completed_at"].alias or "completedAt"
LAST_UPDATED = OperationState.model_fields["last_updated"].alias or "lastUpdated"
SPONSOR_ID = OperationState.model_fields["sponsor_id"].alias or "sponsorId"
_RECENT_SERIALS_KEPT = 256


class Operations:
    """Operation states by operation id, and an index of the ones the timers watch.

    The table also holds finished operations until they are evicted (an hour by default); the
    timers run several times a second and look only at the *watched* ones (not finished, or
    with a completion webhook still pending), the release timer only at those *holding*
    batches back. The indexes follow every save and are rebuilt by one scan when unknown: at
    start, and after every rebalance (:meth:`rescan`).

    The watched operations' documents are also kept here as saved, so that the agents and
    timers, which read them many times a second, do not go to the store (a RocksDB lookup
    and a JSON decode, twice: Faust's table checks the key before it gets it), and so is the
    state parsed from each (:meth:`view`) until its next save. The finished ones are indexed
    by when they ended, for the eviction timer. Every write goes through :meth:`save` or
    :meth:`drop`; what the changelog restores in a rebalance is read again by the
    :meth:`rescan` that follows it.
    """

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table
        self._watched: set[str] | None = None
        self._holding: set[str] = set()
        self._values: dict[str, dict[str, Any]] = {}
        self._views: dict[str, OperationState] = {}
        self._ended: dict[str, tuple[datetime, int]] = {}

    def load(self, operation_id: str) -> OperationState | None:
        value = self._value(operation_id)
        return None if value is None else OperationState.model_validate(value)

    def view(self, operation_id: str) -> OperationState | None:
        """The operation's state for a reader that does not change it (a timer): parsed once
        per save. Mutating it would corrupt what the others read: :meth:`load` to change."""
        state = self._views.get(operation_id)
        if state is None:
            value = self._value(operation_id)
            if value is None:
                return None
            state = OperationState.model_validate(value)
            if operation_id in self._values:
                self._views[operation_id] = state
        return state

    def save(self, state: OperationState) -> None:
        value = state.model_dump(mode="json")
        self._table[state.operation_id] = value
        if self._watched is not None:
            self._index(state.operation_id, value)

    def watched(self) -> list[str]:
        """Ids of operations not finished, or whose completion webhook is pending."""
        return list(self._scanned())

    def holding(self) -> list[str]:
        """Ids of watched operations with batches held back (paused, scheduled, paced or
        waiting their turn): what the release timer looks at."""
        self._scanned()
        return list(self._holding)

    def rescan(self) -> None:
        """Forget the index (the partitions held changed): the next look scans."""
        self._watched = None
        self._holding = set()
        self._values = {}
        self._views = {}
        self._ended = {}

    def _scanned(self) -> set[str]:
        if self._watched is None:
            self._watched = set()
            for op_id in self.ids():
                value = self._table.get(op_id)
                if value is not None:
                    self._index(op_id, value)
        return self._watched

    def _index(self, op_id: str, value: dict[str, Any]) -> None:
        assert self._watched is not None
        self._views.pop(op_id, None)
        if _watched(value):
            self._watched.add(op_id)
            self._values[op_id] = value
            self._ended.pop(op_id, None)
        else:
            self._watched.discard(op_id)
            self._values.pop(op_id, None)
            ended = value.get(COMPLETED_AT) or value[LAST_UPDATED]
            self._ended[op_id] = (datetime.fromisoformat(ended), int(value[SPONSOR_ID]))
        if value.get(HELD_COUNT) and not OperationStatus(value["status"]).is_terminal:
            self._holding.add(op_id)
        else:
            self._holding.discard(op_id)

    def _value(self, operation_id: str) -> dict[str, Any] | None:
        value = self._values.get(operation_id)
        return self._table.get(operation_id) if value is None else value

    def ids(self) -> list[str]:
        return list(self._table.keys())

    def drop(self, operation_id: str) -> None:
        self._table.pop(operation_id, None)
        if self._watched is not None:
            self._watched.discard(operation_id)
        self._holding.discard(operation_id)
        self._values.pop(operation_id, None)
        self._views.pop(operation_id, None)
        self._ended.pop(operation_id, None)

    def finished_before(self, moment: datetime) -> list[tuple[str, int]]:
        """(operation id, sponsor id) of the operations :meth:`finished_by` ``moment``."""
        self._scanned()
        return [
            (op_id, sponsor) for op_id, (ended, sponsor) in self._ended.items() if ended < moment
        ]

    def finished_by(self, operation_id: str, moment: datetime) -> bool:
        """Whether the operation ended before ``moment`` and has nothing left to do (no
        completion webhook still being delivered)."""
        value = self._value(operation_id)
        return value is not None and _finished_by(value, moment)


def _watched(value: dict[str, Any]) -> bool:
    return not OperationStatus(value["status"]).is_terminal or value.get(WEBHOOK_STATE) == "pending"


def _finished_by(value: dict[str, Any], moment: datetime) -> bool:
    if _watched(value):
        return False
    return datetime.fromisoformat(value.get(COMPLETED_AT) or value[LAST_UPDATED]) < moment


class Remembered(MutableMapping[str, Any]):
    """A table whose values, once read or written, are also kept in memory: for small tables
    read and rewritten on every operation (a sponsor's serials and quota record), where a
    RocksDB lookup and a JSON decode per read cost more than the few KiB they take. Writes go
    to the table as before. :meth:`forget` after a rebalance (what the changelog restored is
    read afresh)."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table
        self._kept: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self._kept.get(key)
        if value is None:
            value = self._kept[key] = self._table[key]
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._kept.get(key)
        if value is None:
            value = self._table.get(key)
            if value is None:
                return default
            self._kept[key] = value
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._table[key] = value
        self._kept[key] = value

    def __delitem__(self, key: str) -> None:
        self._kept.pop(key, None)
        del self._table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def forget(self) -> None:
        self._kept = {}


class Serials:
    """Each sponsor's next code serial, and the range recent operations were given."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table

    def reserve(self, request: OperationRequested) -> int:
        """The first serial of the operation's range; the same one again on a replay."""
        key = str(request.sponsor_id)
        record = self._table.get(key) or {"next": 0, "recent": {}}
        recent: dict[str, int] = dict(record["recent"])
        if request.operation_id in recent:
            return recent[request.operation_id]
        base = int(record["next"])
        recent[request.operation_id] = base
        while len(recent) > _RECENT_SERIALS_KEPT:
            recent.pop(next(iter(recent)))
        self._table[key] = {"next": base + request.total_items, "recent": recent}
        return base


class EarlyControl(BaseModel):
    action: ControlAction
    sponsor_id: int
    kept_at: datetime


class EarlyControls:
    """Cancel/pause/resume that arrived before their operation's request (another topic, no
    order between them): the action to apply when the request comes. A cancel is final.
    Kept until the request comes or the retention ends (a request that never comes)."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table

    def get(self, operation_id: str) -> ControlAction | None:
        value = self._table.get(operation_id)
        if value is None:
            return None
        if isinstance(value, str):  # kept by a version without retention
            return ControlAction(value)
        return EarlyControl.model_validate(value).action

    def keep(
        self, operation_id: str, sponsor_id: int, action: ControlAction, moment: datetime
    ) -> None:
        if self.get(operation_id) is not ControlAction.CANCEL:
            kept = EarlyControl(action=action, sponsor_id=sponsor_id, kept_at=moment)
            self._table[operation_id] = kept.model_dump(mode="json")

    def drop(self, operation_id: str) -> None:
        self._table.pop(operation_id, None)

    def kept_before(self, moment: datetime) -> list[tuple[str, int]]:
        """(operation id, sponsor id) of controls kept since before ``moment``."""
        found = []
        for op_id in list(self._table.keys()):
            value = self._table.get(op_id)
            if isinstance(value, dict):
                kept = EarlyControl.model_validate(value)
                if kept.kept_at < moment:
                    found.append((op_id, kept.sponsor_id))
        return found


class QuotaRecord(BaseModel):
    """A sponsor's overrides, the operations holding a concurrency slot (id → items), and
    today's use."""

    overrides: dict[str, int | None] = Field(default_factory=dict)
    active: dict[str, int] = Field(default_factory=dict)
    use: QuotaUse = Field(default_factory=QuotaUse)
    update_ids: list[str] = Field(default_factory=list)


class QuotaTable:
    """Quota records by sponsor id, and the default overrides by partition."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table

    def load(self, key: str) -> QuotaRecord:
        value = self._table.get(key)
        return QuotaRecord() if value is None else QuotaRecord.model_validate(value)

    def save(self, key: str, record: QuotaRecord) -> None:
        self._table[key] = record.model_dump(mode="json")


@dataclass(frozen=True)
class Tables:
    operations: Operations
    serials: Serials
    early_controls: EarlyControls
    quotas: QuotaTable
    remembered: tuple[Remembered, ...] = ()

    def rebalanced(self) -> None:
        """The partitions held changed: what is kept beside the stores is read afresh."""
        self.operations.rescan()
        for table in self.remembered:
            table.forget()

    @classmethod
    def over(
        cls,
        operations: MutableMapping[str, Any],
        serials: MutableMapping[str, Any],
        early_controls: MutableMapping[str, Any],
        quotas: MutableMapping[str, Any],
    ) -> Tables:
        remembered = (Remembered(serials), Remembered(quotas))
        return cls(
            Operations(operations),
            Serials(remembered[0]),
            EarlyControls(early_controls),
            QuotaTable(remembered[1]),
            remembered,
        )


_MIB = 1024 * 1024
# One RocksDB per table and partition: Faust's defaults (64 MiB write buffers × 3, a 2 GiB
# block cache each) would let 16 small databases grow a process by gigabytes. Table values
# are a few KiB and the hot set is the running operations.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 2 * _MIB,
    "max_write_buffer_number": 2,
    "target_file_size_base": 8 * _MIB,
    "block_cache_size": 4 * _MIB,
    "block_cache_compressed_size": 0,
}


def declare(app: faust.App, partitions: int, store: str) -> Tables:
    """The worker's Faust tables (changelog partitions equal to the source topics')."""
    options = ROCKSDB_OPTIONS if store == "rocksdb" else None

    def table(name: str) -> Any:
        return app.Table(
            name,
            default=None,
            partitions=partitions,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
            options=options,
        )

    operations, serials, early_controls, quotas = (table(name) for name in WORKER_TABLES)
    return Tables.over(operations, serials, early_controls, quotas)
