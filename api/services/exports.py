"""A sponsor's export of one operation's items: CSV, Excel or Parquet, in constant memory.

Items come from ClickHouse a page at a time (:meth:`analytics.reader.Reader.all_items`).
CSV and Parquet go out as each page is encoded; an Excel workbook has to be whole before it
can be sent (a zip ends with its directory), so openpyxl's write-only mode builds it in a
temporary file, which is then streamed. Text cells that a spreadsheet would run as a formula
are quoted in CSV and Excel (:func:`core.cells.safe_cell`).
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import Workbook

from core.cells import safe_cell
from schemas.analytics import ExportFormat

# Column names as the items endpoint's JSON has them; the row tuples are Reader.items_page's.
COLUMNS = (
    "index",
    "itemId",
    "status",
    "resultData",
    "errorCode",
    "errorMessage",
    "errorCategory",
    "isRetryable",
    "retryCount",
    "processedAt",
    "processingDurationMs",
    "channel",
    "cost",
    "attempts",
)
_PROCESSED_AT = COLUMNS.index("processedAt")
_SCHEMA = pa.schema(
    [
        ("index", pa.uint32()),
        ("itemId", pa.string()),
        ("status", pa.string()),
        ("resultData", pa.string()),
        ("errorCode", pa.string()),
        ("errorMessage", pa.string()),
        ("errorCategory", pa.string()),
        ("isRetryable", pa.bool_()),
        ("retryCount", pa.uint16()),
        ("processedAt", pa.timestamp("ms", tz="UTC")),
        ("processingDurationMs", pa.float64()),
        ("channel", pa.string()),
        ("cost", pa.float64()),
        ("attempts", pa.uint16()),
    ]
)
MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}
XLSX_ROWS_PER_SHEET = 1_000_000  # Excel's limit is 1,048,576 rows, header included
_CHUNK = 1 << 16


def encode(pages: Iterable[list[tuple[Any, ...]]], export_format: ExportFormat) -> Iterator[bytes]:
    if export_format is ExportFormat.CSV:
        return _csv(pages)
    if export_format is ExportFormat.XLSX:
        return _xlsx(pages)
    return _parquet(pages)


def _csv(pages: Iterable[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for page in pages:
        for row in page:
            writer.writerow(_cells(row, _iso))
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _xlsx(pages: Iterable[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    book = Workbook(write_only=True)
    sheet: Any = None
    rows = 0
    for page in pages:
        for row in page:
            if sheet is None or rows == XLSX_ROWS_PER_SHEET:
                sheet = book.create_sheet(f"Items {len(book.worksheets) + 1}")
                sheet.append([*COLUMNS[:_PROCESSED_AT], "processedAt (UTC)", *COLUMNS[10:]])
                rows = 0
            sheet.append(_cells(row, _naive_utc))
            rows += 1
    if sheet is None:
        book.create_sheet("Items 1").append(list(COLUMNS))
    with tempfile.TemporaryFile() as file:
        book.save(file)
        file.seek(0)
        while chunk := file.read(_CHUNK):
            yield chunk


def _parquet(pages: Iterable[list[tuple[Any, ...]]]) -> Iterator[bytes]:
    out = _Outbox()
    with pq.ParquetWriter(out, _SCHEMA, compression="zstd") as writer:
        for page in pages:
            columns = list(zip(*page, strict=True))
            writer.write_table(pa.Table.from_arrays(columns, schema=_SCHEMA))  # one row group
            yield out.take()
    yield out.take()


class _Outbox(io.RawIOBase):
    """A write-only stream that hands its bytes on: ``tell`` keeps counting from the start,
    as the Parquet footer's offsets need, while ``take`` empties it."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _cells(row: tuple[Any, ...], when: Any) -> list[Any]:
    cells = [safe_cell(value) for value in row]
    cells[_PROCESSED_AT] = when(row[_PROCESSED_AT])
    return cells


def _iso(value: datetime) -> str:
    return value.isoformat()


def _naive_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=None)
