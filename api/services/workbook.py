"""Dealer-invitation workbooks: read an upload safely, write the template and the reports.

Uploads are untrusted zip files. Before openpyxl sees one, the zip's directory is checked
(real zip, an ``xl/workbook.xml`` inside, bounded uncompressed size and compression ratio),
so a zip bomb or a gigantic shared-strings table is refused without being inflated. The
sheet is then streamed with openpyxl's read-only mode, stopping one row past the limit.

Cells are read as values, never evaluated: a formula arrives as its text (``=...``) and is
refused. Written cells that begin like a formula are neutralised (OWASP's advice for CSV
and spreadsheet injection): a leading apostrophe, stored as a plain string.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.worksheet.datavalidation import DataValidation

from core.cells import safe_cell

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = ("Email", "Phone", "DealerName", "CodeCount", "Tier")
TIERS = ("S", "M", "L", "XL")
MAX_NAME_LENGTH = 200
MAX_CODES_PER_DEALER = 1000
_UNZIPPED_LIMIT_FACTOR = 10
_MAX_RATIO = 200
_PHONE_CHARS = re.compile(r"[\s\-().]")


class WorkbookError(ValueError):
    """The file as a whole cannot be used (not a workbook, too big, no sheet ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    error: str
    value: str = ""


@dataclass(frozen=True)
class DealerInput:
    row: int
    email: str
    phone: str
    name: str
    code_count: int
    tier: str


@dataclass
class ParsedSheet:
    dealers: list[DealerInput] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def check_container(data: bytes, *, max_bytes: int) -> None:
    """Refuse anything that is not a reasonably sized xlsx zip, before inflating it."""
    if not data:
        raise WorkbookError("EMPTY_FILE", "The file is empty")
    if len(data) > max_bytes:
        raise WorkbookError("FILE_TOO_LARGE", f"The file is larger than {max_bytes} bytes")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise WorkbookError(
            "NOT_XLSX", "Not an .xlsx workbook (an .xlsx is a zip file; CSV or .xls are not)"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise WorkbookError("NOT_XLSX", f"The workbook's zip is damaged: {exc}") from exc
    names = {entry.filename for entry in entries}
    if "xl/workbook.xml" not in names:
        raise WorkbookError("NOT_XLSX", "A zip file, but not an Excel workbook")
    unzipped = sum(entry.file_size for entry in entries)
    packed = sum(entry.compress_size for entry in entries) or 1
    if unzipped > max_bytes * _UNZIPPED_LIMIT_FACTOR or unzipped / packed > _MAX_RATIO:
        raise WorkbookError(
            "FILE_TOO_LARGE",
            f"The workbook unpacks to {unzipped} bytes (ratio {unzipped / packed:.0f}:1): refused",
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _phone(value: Any, region: str) -> str | None:
    """E.164, or None. Excel drops a leading 0 and may store 5051234567 as 5.05e9."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return None
        digits = str(int(value))
        text = "0" + digits if len(digits) == 10 and digits.startswith("5") else digits
    else:
        text = _PHONE_CHARS.sub("", str(value))
        if text.startswith("90") and len(text) == 12:
            text = "+" + text
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_sheet(
    data: bytes,
    *,
    max_rows: int,
    max_bytes: int,
    default_tier: str,
    default_code_count: int,
    use_row_counts: bool,
    region: str = "TR",
) -> ParsedSheet:
    """Every dealer row, or every problem with row numbers (all of them, not the first ten)."""
    check_container(data, max_bytes=max_bytes)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for broken parts
        raise WorkbookError("NOT_XLSX", f"The workbook cannot be read: {exc}") from exc
    try:
        if not book.sheetnames:
            raise WorkbookError("NO_SHEET", "The workbook has no sheet")
        sheet = book[book.sheetnames[0]]
        parsed = ParsedSheet()
        seen_rows = 0
        for number, row in enumerate(sheet.iter_rows(min_row=2, values_only=True), start=2):
            cells = (list(row) + [None] * 5)[:5]
            if all(_text(c) == "" for c in cells[:3]):
                continue  # empty rows are skipped, as in the seed
            seen_rows += 1
            if seen_rows > max_rows:
                raise WorkbookError(
                    "TOO_MANY_ROWS", f"More than {max_rows} dealer rows (the limit per upload)"
                )
            _parse_row(
                parsed, number, cells, default_tier, default_code_count, use_row_counts, region
            )
    finally:
        book.close()
    if not parsed.dealers and not parsed.errors:
        raise WorkbookError("NO_ROWS", "No dealer rows below the header (row 1)")
    return parsed


def _parse_row(
    parsed: ParsedSheet,
    number: int,
    cells: list[Any],
    default_tier: str,
    default_code_count: int,
    use_row_counts: bool,
    region: str,
) -> None:
    errors: list[RowError] = []
    raw_email, raw_phone, raw_name, raw_count, raw_tier = cells
    for name, value in zip(HEADER, cells, strict=True):
        if isinstance(value, str) and value.startswith("="):
            errors.append(RowError(number, name, "Formulas are not accepted", value[:100]))
    email = ""
    try:
        email = validate_email(_text(raw_email), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        errors.append(RowError(number, "Email", f"Invalid email: {exc}", _text(raw_email)[:100]))
    phone = _phone(raw_phone, region)
    if phone is None:
        errors.append(RowError(number, "Phone", "Invalid phone number", _text(raw_phone)[:32]))
    name = " ".join(_text(raw_name).split())
    if not name or len(name) > MAX_NAME_LENGTH:
        errors.append(
            RowError(number, "DealerName", f"Required, at most {MAX_NAME_LENGTH} characters")
        )
    count = default_code_count
    if use_row_counts and _text(raw_count):
        try:
            count = int(float(_text(raw_count)))
        except ValueError:
            count = -1
        if not 0 <= count <= MAX_CODES_PER_DEALER:
            errors.append(
                RowError(
                    number,
                    "CodeCount",
                    f"A whole number from 0 to {MAX_CODES_PER_DEALER}",
                    _text(raw_count)[:20],
                )
            )
    tier = _text(raw_tier).upper() or default_tier
    if tier not in TIERS:
        errors.append(RowError(number, "Tier", f"One of {', '.join(TIERS)}", _text(raw_tier)[:20]))
    if errors:
        parsed.errors.extend(errors)
        return
    assert phone is not None
    parsed.dealers.append(DealerInput(number, email, phone, name, count, tier))


def find_duplicates(dealers: Sequence[DealerInput]) -> list[RowError]:
    """Second and later rows with an email (any case) or phone seen above them."""
    emails: dict[str, int] = {}
    phones: dict[str, int] = {}
    errors: list[RowError] = []
    for dealer in dealers:
        if dealer.email in emails:
            errors.append(
                RowError(
                    dealer.row,
                    "Email",
                    f"Duplicate of row {emails[dealer.email]}",
                    dealer.email,
                )
            )
        elif dealer.phone in phones:
            errors.append(
                RowError(
                    dealer.row, "Phone", f"Duplicate of row {phones[dealer.phone]}", dealer.phone
                )
            )
        emails.setdefault(dealer.email, dealer.row)
        phones.setdefault(dealer.phone, dealer.row)
    return errors


def _write(sheet: Any, rows: Iterable[Sequence[Any]]) -> None:
    """openpyxl stores text starting with ``=`` as a formula; ``safe_cell`` leaves none."""
    for row in rows:
        sheet.append([safe_cell(v) for v in row])


def _save(book: Workbook) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def template() -> bytes:
    """The upload template: header, one example row, a tier drop-down."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Dealers"
    sheet.append(list(HEADER))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.append(["bayi@example.com", "05321234567", "Örnek Tarım Bayii", 10, "M"])
    sheet["B2"].number_format = "@"
    tiers = DataValidation(
        type="list",
        formula1='"' + ",".join(TIERS) + '"',
        allow_blank=True,
        showErrorMessage=True,
        errorTitle="Tier",
        error="Choose S, M, L or XL",
    )
    sheet.add_data_validation(tiers)
    tiers.add("E2:E5001")
    for column, width in zip("ABCDE", (32, 18, 36, 12, 8), strict=True):
        sheet.column_dimensions[column].width = width
    return _save(book)


def error_report(errors: Sequence[RowError]) -> bytes:
    """Every problem of a refused upload, one per line, sorted by row."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Errors"
    _write(sheet, [("Row", "Column", "Error", "Value")])
    _write(sheet, [(e.row, e.field, e.error, e.value) for e in sorted(errors, key=_by_row)])
    return _save(book)


def _by_row(error: RowError) -> tuple[int, str]:
    return error.row, error.field


REPORT_HEADER = (
    "Row",
    "Email",
    "Phone",
    "DealerName",
    "Tier",
    "Status",
    "Error",
    "Codes",
    "InvitationToken",
    "ProcessedAt",
)


def outcome_report(rows: Iterable[Sequence[Any]]) -> bytes:
    """Every dealer row of a job with its outcome, error and assigned codes."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Invitations"
    _write(sheet, [REPORT_HEADER])
    _write(sheet, rows)
    return _save(book)
