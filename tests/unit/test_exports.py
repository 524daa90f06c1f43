"""Item exports: every format holds every row, in order, and no cell runs as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from api.services import exports
from schemas.analytics import ExportFormat

WHEN = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)


def pages(count: int, per_page: int = 4) -> Iterator[list[tuple[Any, ...]]]:
    rows = [
        (
            i,
            f"op:{i}",
            "Failed" if i == 1 else "Success",
            '=HYPERLINK("http://evil")' if i == 0 else f"CODE-{i}",
            "PROVIDER_ERROR" if i == 1 else None,
            "@SUM(A1) from the provider" if i == 1 else None,
            "Network" if i == 1 else None,
            i == 1,
            0,
            WHEN,
            12.5,
            "SMS",
            0.05,
            1,
        )
        for i in range(count)
    ]
    for start in range(0, count, per_page):
        yield rows[start : start + per_page]


def joined(export_format: ExportFormat, count: int) -> bytes:
    return b"".join(exports.encode(pages(count), export_format))


def test_csv_holds_every_row_with_formulas_quoted() -> None:
    rows = list(csv.reader(io.StringIO(joined(ExportFormat.CSV, 10).decode())))
    assert rows[0] == list(exports.COLUMNS) and len(rows) == 11
    assert rows[1][3] == '\'=HYPERLINK("http://evil")'
    assert rows[2][5] == "'@SUM(A1) from the provider"
    assert rows[10][0] == "9" and rows[10][9] == WHEN.isoformat()


def test_xlsx_holds_every_row_with_no_formula_cell() -> None:
    book = load_workbook(io.BytesIO(joined(ExportFormat.XLSX, 10)))
    sheet = book.active
    assert sheet is not None
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert len(values) == 11 and values[1][3] == '\'=HYPERLINK("http://evil")'
    assert values[10][9] == WHEN.replace(tzinfo=None)
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_xlsx_starts_a_new_sheet_past_the_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "XLSX_ROWS_PER_SHEET", 4)
    book = load_workbook(io.BytesIO(joined(ExportFormat.XLSX, 10)))
    assert book.sheetnames == ["Items 1", "Items 2", "Items 3"]
    assert [book[name].max_row for name in book.sheetnames] == [5, 5, 3]


def test_parquet_holds_every_row_one_row_group_per_page() -> None:
    body = joined(ExportFormat.PARQUET, 10)
    table = pq.read_table(io.BytesIO(body))
    assert table.num_rows == 10 and table.column("index").to_pylist() == list(range(10))
    assert pq.ParquetFile(io.BytesIO(body)).num_row_groups == 3
    assert table.column("processedAt").to_pylist()[0] == WHEN


@pytest.mark.parametrize("export_format", list(ExportFormat))
def test_an_operation_without_items_is_a_valid_empty_file(export_format: ExportFormat) -> None:
    body = b"".join(exports.encode(iter([]), export_format))
    if export_format is ExportFormat.CSV:
        assert body.decode().strip() == ",".join(exports.COLUMNS)
    elif export_format is ExportFormat.XLSX:
        assert load_workbook(io.BytesIO(body)).active is not None
    else:
        assert pq.read_table(io.BytesIO(body)).num_rows == 0
