"""Column-oriented rows as Arrow arrays, built once for all the batches of one insert.

clickhouse-connect's Native encoder walks every value in Python, holding the GIL for the whole
insert (a 50,000-row batch of ``items`` kept other threads and the event loop waiting ~5 ms at
every switch). ClickHouse reads an Arrow stream natively, with the GIL released.

Most columns of a result batch hold one value for every item (the operation, the sponsor,
the outcome of a code batch, the timestamp). Each batch gives such a column one
:class:`Same` value, and what differs per item (codes, per-item statuses, errors) as a list;
:class:`Columns` turns every column of all the batches of an insert into one array at the
end. A column every batch shares becomes one C call (a repeat, or a ``take`` of the batches'
values), so a batch costs a few list appends whatever its size: building each batch's own
arrays cost ~0.5 ms per batch in pyarrow's per-call overhead, most of the work for a batch
of 10 items. Measured with ``benchmarks/store_floor.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: ``DateTime64(3, 'UTC')`` columns: milliseconds since the epoch (:func:`analytics.rows.ms`).
MILLISECONDS_UTC = pa.timestamp("ms", tz="UTC")
INT = pa.int64()
FLOAT = pa.float64()
TEXT = pa.string()
BOOL = pa.bool_()


@dataclass(frozen=True, slots=True)
class Same:
    """One value that every row of a batch has in a column."""

    value: Any


#: A batch's part of a column: one shared value, its rows' values, or a numpy array of them.
Segment = Same | Sequence[Any] | np.ndarray


class Columns:
    """Rows gathered batch by batch, built into one Arrow table when they are inserted.

    Merging the rows of several messages for one insert is :meth:`extend`: it moves
    references, and no array exists until :meth:`table`.
    """

    def __init__(
        self,
        names: Iterable[str],
        types: Iterable[pa.DataType],
        *,
        complete: Callable[[pa.Table], pa.Table] | None = None,
    ) -> None:
        """``complete``: what the built table still needs (values derived from other
        columns, computed once for all rows)."""
        self.names = tuple(names)
        self.types = tuple(types)
        if len(self.names) != len(self.types):
            raise ValueError("a type for each column")
        self._complete = complete
        self.counts: list[int] = []
        self._segments: list[list[Segment]] = [[] for _ in self.names]

    def __len__(self) -> int:
        return sum(self.counts)

    def add(self, n: int, segments: Sequence[Segment]) -> None:
        """A batch of ``n`` rows: one segment per column, in column order."""
        if len(segments) != len(self.names):
            raise ValueError(f"{len(segments)} segments for {len(self.names)} columns")
        self.counts.append(n)
        for column, segment in zip(self._segments, segments, strict=True):
            column.append(segment)

    def extend(self, other: Columns) -> None:
        """Append ``other``'s batches (same columns); ``other`` is not to be used again."""
        if other.names != self.names:
            raise ValueError("rows of other columns")
        self.counts.extend(other.counts)
        for mine, theirs in zip(self._segments, other._segments, strict=True):
            mine.extend(theirs)

    def table(self) -> pa.Table:
        owners = _Owners(self.counts)
        arrays = [
            _array(segments, self.counts, type_, owners)
            for segments, type_ in zip(self._segments, self.types, strict=True)
        ]
        built = pa.Table.from_arrays(arrays, names=list(self.names))
        return self._complete(built) if self._complete else built


class _Owners:
    """Which batch each row comes from, computed when a column first needs it."""

    def __init__(self, counts: Sequence[int]) -> None:
        self._counts = counts
        self._indices: pa.Array | None = None

    def indices(self) -> pa.Array:
        if self._indices is None:
            self._indices = pa.array(np.repeat(np.arange(len(self._counts)), self._counts))
        return self._indices


def _array(
    segments: Sequence[Segment], counts: Sequence[int], type_: pa.DataType, owners: _Owners
) -> pa.Array:
    if all(isinstance(s, Same) for s in segments):
        shared = [s.value for s in segments]  # type: ignore[union-attr]
        if not shared or shared.count(shared[0]) == len(shared):
            return repeated(shared[0] if shared else None, sum(counts), type_)
        return pa.array(shared, type_).take(owners.indices())
    if all(isinstance(s, np.ndarray) for s in segments):
        return pa.array(np.concatenate(segments), type_)  # type: ignore[arg-type]
    flat: list[Any] = []
    for segment, n in zip(segments, counts, strict=True):
        if isinstance(segment, Same):
            flat.extend(itertools.repeat(segment.value, n))
        elif isinstance(segment, np.ndarray):
            flat.extend(segment.tolist())
        else:
            flat.extend(segment)
    return pa.array(flat, type_)


def repeated(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    """``value`` ``n`` times (None: ``n`` nulls of ``type_``)."""
    if value is None:
        return pa.nulls(n, type_)
    return pa.repeat(pa.scalar(value, type_), n)


def each(items: Sequence[Any]) -> Segment:
    """A batch's values of a column: :class:`Same` if they are all one value (``count`` is one
    C loop, and the column may then need no per-row work at all)."""
    n = len(items)
    if n and items.count(items[0]) == n:
        return Same(items[0])
    return items


def counting(start: int, n: int) -> np.ndarray:
    """``start``, ``start + 1``, … ``n`` integers."""
    return np.arange(start, start + n, dtype=np.int64)


def joined(prefixes: pa.Array, separator: str, numbers: pa.Array) -> pa.Array:
    """``f"{prefix}{separator}{number}"`` for each row."""
    return pc.binary_join_element_wise(prefixes, pc.cast(numbers, TEXT), separator)


def records(arrow: pa.Table) -> list[dict[str, Any]]:
    """The rows as dicts of Python values, timestamps as milliseconds (as rows store them)."""
    fields = [
        pc.cast(arrow.column(i), INT) if pa.types.is_timestamp(f.type) else arrow.column(i)
        for i, f in enumerate(arrow.schema)
    ]
    found: list[dict[str, Any]] = pa.Table.from_arrays(fields, names=arrow.column_names).to_pylist()
    return found
