"""The store's parts as their callers see them: what the real parts (on ClickHouse) and the
in-memory fakes of :mod:`analytics.testing` both implement."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from analytics.rows import TableRows
from schemas.messages import (
    ItemBatch,
    ItemsChunk,
    OperationRequested,
    ResultBatch,
)


class ResultSink(Protocol):
    """What the worker writes as operations run."""

    def insert_results(
        self, batches: Sequence[ResultBatch], extra: Sequence[TableRows] = ()
    ) -> int: ...

    def write(self, tables: Sequence[TableRows]) -> None: ...


class KeptState(Protocol):
    """What the worker keeps in the store and reads back while it runs."""

    def request(self, sponsor_id: int, operation_id: str) -> OperationRequested | None: ...

    def record_chunk(self, chunk: ItemsChunk, batches: Sequence[ItemBatch]) -> None: ...

    def item_batches(
        self, sponsor_id: int, operation_id: str, indexes: list[int]
    ) -> dict[int, str]: ...

    def stored_result(self, batch: ItemBatch) -> ResultBatch | None: ...

    def reserve_codes(
        self, sponsor_id: int, operation_id: str, needs: Sequence[tuple[int, int, int]]
    ) -> dict[int, list[str]]: ...


class SubmitLookups(Protocol):
    """What a submit checks in the store before it queues."""

    def known_codes(self, sponsor_id: int, codes: Iterable[str]) -> set[str]: ...

    def available_codes(self, sponsor_id: int) -> dict[int, int]: ...

    def existing_dealers(self, sponsor_id: int, emails: Sequence[str]) -> set[str]: ...
