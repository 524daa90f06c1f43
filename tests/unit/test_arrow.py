"""Columns gathered batch by batch: every way a batch can give a column, built once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from analytics import arrow
from analytics.arrow import Same


def gathered(*batches: tuple[int, list[arrow.Segment]]) -> arrow.Columns:
    columns = arrow.Columns(("n", "s"), (arrow.INT, arrow.TEXT))
    for n, segments in batches:
        columns.add(n, segments)
    return columns


def test_a_value_every_batch_shares_is_one_repeated_value() -> None:
    table = gathered((2, [Same(7), Same("a")]), (1, [Same(7), Same("a")])).table()
    assert table.to_pydict() == {"n": [7, 7, 7], "s": ["a", "a", "a"]}


def test_shared_values_that_differ_between_batches_stay_with_their_rows() -> None:
    table = gathered((2, [Same(1), Same("a")]), (3, [Same(2), Same(None)])).table()
    assert table.to_pydict() == {"n": [1, 1, 2, 2, 2], "s": ["a", "a", None, None, None]}


def test_lists_numpy_and_shared_values_mix_in_batch_order() -> None:
    table = gathered(
        (2, [np.arange(5, 7), ["x", "y"]]),
        (1, [Same(9), Same("z")]),
        (2, [[1, 2], ["p", None]]),
    ).table()
    assert table.to_pydict() == {"n": [5, 6, 9, 1, 2], "s": ["x", "y", "z", "p", None]}


def test_numpy_ranges_of_every_batch_are_joined() -> None:
    table = gathered(
        (2, [arrow.counting(10, 2), Same("a")]), (2, [arrow.counting(0, 2), Same("a")])
    ).table()
    assert table.column("n").to_pylist() == [10, 11, 0, 1]


def test_extend_appends_the_other_batches() -> None:
    first = gathered((1, [Same(1), Same("a")]))
    first.extend(gathered((2, [[2, 3], Same("b")])))
    assert len(first) == 3
    assert first.table().to_pydict() == {"n": [1, 2, 3], "s": ["a", "b", "b"]}


def test_no_batches_make_an_empty_table_of_the_columns() -> None:
    table = gathered().table()
    assert table.num_rows == 0
    assert table.schema.types == [pa.int64(), pa.string()]


def test_complete_derives_columns_from_the_built_table() -> None:
    columns = arrow.Columns(
        ("n", "s"),
        (arrow.INT, arrow.TEXT),
        complete=lambda t: t.set_column(1, "s", arrow.joined(t.column("s"), "-", t.column("n"))),
    )
    columns.add(2, [np.arange(2), Same("op")])
    assert columns.table().column("s").to_pylist() == ["op-0", "op-1"]


def test_each_names_a_shared_value() -> None:
    assert arrow.each([3, 3]) == Same(3)
    assert arrow.each([3, 4]) == [3, 4]
    assert arrow.each([]) == []


def test_a_type_is_needed_for_each_column() -> None:
    with pytest.raises(ValueError, match="a type for each column"):
        arrow.Columns(("n",), (arrow.INT, arrow.TEXT))


def test_a_batch_gives_every_column() -> None:
    with pytest.raises(ValueError, match="1 segments for 2 columns"):
        gathered((1, [Same(1)]))


def test_rows_of_other_columns_are_not_merged() -> None:
    other = arrow.Columns(("m", "s"), (arrow.INT, arrow.TEXT))
    with pytest.raises(ValueError, match="other columns"):
        gathered().extend(other)
