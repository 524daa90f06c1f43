"""Reading dealer workbooks safely, and writing the template and reports."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from api.services import workbook

LIMIT = 5 * 1_048_576


def xlsx(rows: list[list[Any]], *, header: bool = True, merge: str | None = None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    if header:
        sheet.append(list(workbook.HEADER))
    for row in rows:
        sheet.append(row)
    if merge:
        sheet.merge_cells(merge)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def parse(data: bytes, **overrides: Any) -> workbook.ParsedSheet:
    options: dict[str, Any] = {
        "max_rows": 2000,
        "max_bytes": LIMIT,
        "default_tier": "M",
        "default_code_count": 2,
        "use_row_counts": True,
    }
    options.update(overrides)
    return workbook.parse_sheet(data, **options)


def test_a_good_row_is_normalised() -> None:
    parsed = parse(
        xlsx([["  Bayi@Example.COM ", " 0532 123 45 67 ", "  Çağrı   Öztürk Tarım ", 3, "l"]])
    )
    assert parsed.errors == []
    (dealer,) = parsed.dealers
    assert dealer.email == "bayi@example.com"
    assert dealer.phone == "+905321234567"
    assert dealer.name == "Çağrı Öztürk Tarım"
    assert (dealer.code_count, dealer.tier, dealer.row) == (3, "L", 2)


@pytest.mark.parametrize(
    "cell", [5321234567, 5.321234567e9, "+90 532 123 45 67", "905321234567", "(0532) 123-4567"]
)
def test_phone_cells_as_excel_writes_them(cell: Any) -> None:
    (dealer,) = parse(xlsx([["a@example.com", cell, "A", 1, "S"]])).dealers
    assert dealer.phone == "+905321234567"


def test_defaults_apply_to_empty_cells_and_when_row_counts_are_off() -> None:
    parsed = parse(xlsx([["a@example.com", "05321234567", "A", 9, None]]), use_row_counts=False)
    (dealer,) = parsed.dealers
    assert (dealer.code_count, dealer.tier) == (2, "M")


def test_every_row_error_is_reported_with_its_row() -> None:
    rows = [["not-an-email", "12", "", "many", "XXL"] for _ in range(25)]
    parsed = parse(xlsx(rows))
    assert parsed.dealers == []
    assert {e.row for e in parsed.errors} == set(range(2, 27))
    assert {e.field for e in parsed.errors} == {"Email", "Phone", "DealerName", "CodeCount", "Tier"}


def test_empty_rows_are_skipped() -> None:
    parsed = parse(xlsx([[None] * 5, ["a@example.com", "05321234567", "A", 1, "S"], [" "] * 5]))
    assert [d.row for d in parsed.dealers] == [3]


def test_formulas_are_refused_not_evaluated() -> None:
    parsed = parse(xlsx([["a@example.com", "05321234567", '=HYPERLINK("http://x","A")', 1, "S"]]))
    assert parsed.dealers == []
    assert parsed.errors[0].field == "DealerName"
    assert "Formulas" in parsed.errors[0].error


def test_merged_cells_leave_the_covered_rows_incomplete() -> None:
    rows = [
        ["a@example.com", "05321234567", "Merged Bayi", 1, "S"],
        ["b@example.com", "05321234568", None, 1, "S"],
    ]
    parsed = parse(xlsx(rows, merge="C2:C3"))
    assert [d.row for d in parsed.dealers] == [2]
    assert [(e.row, e.field) for e in parsed.errors] == [(3, "DealerName")]


def test_duplicates_differing_only_in_case_are_found() -> None:
    parsed = parse(
        xlsx(
            [
                ["Ali@Example.com", "05321234567", "A", 1, "S"],
                ["ali@example.com", "05321234568", "B", 1, "S"],
                ["c@example.com", "+905321234567", "C", 1, "S"],
            ]
        )
    )
    duplicates = workbook.find_duplicates(parsed.dealers)
    assert [(e.row, e.field) for e in duplicates] == [(3, "Email"), (4, "Phone")]
    assert duplicates[0].error == "Duplicate of row 2"


def test_too_many_rows() -> None:
    row = ["a@example.com", "05321234567", "A", 1, "S"]
    assert len(parse(xlsx([row] * 2000)).dealers) == 2000
    with pytest.raises(workbook.WorkbookError) as caught:
        parse(xlsx([row] * 2001))
    assert caught.value.code == "TOO_MANY_ROWS"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "EMPTY_FILE"),
        (b"email,phone,name\na@example.com,05321234567,A\n", "NOT_XLSX"),
        (b"PK\x03\x04 not really a zip", "NOT_XLSX"),
    ],
)
def test_files_that_are_not_workbooks(data: bytes, code: str) -> None:
    with pytest.raises(workbook.WorkbookError) as caught:
        parse(data)
    assert caught.value.code == code


def test_a_zip_that_is_not_a_workbook() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(workbook.WorkbookError) as caught:
        parse(buffer.getvalue())
    assert caught.value.code == "NOT_XLSX"


def test_a_zip_bomb_is_refused_before_it_is_inflated() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/sharedStrings.xml", "w") as strings:
            chunk = b"<si><t>A</t></si>" * 65536
            for _ in range(200):  # ~220 MB of shared strings, ~0.2 MB packed
                strings.write(chunk)
    data = buffer.getvalue()
    assert len(data) < LIMIT
    with pytest.raises(workbook.WorkbookError) as caught:
        parse(data)
    assert caught.value.code == "FILE_TOO_LARGE"


def test_no_rows_below_the_header() -> None:
    with pytest.raises(workbook.WorkbookError) as caught:
        parse(xlsx([]))
    assert caught.value.code == "NO_ROWS"


def test_the_template_has_a_header_an_example_and_a_tier_list() -> None:
    book = load_workbook(io.BytesIO(workbook.template()))
    sheet = book.active
    assert sheet is not None
    assert [c.value for c in sheet[1]] == list(workbook.HEADER)
    assert sheet["E2"].value == "M"
    validations = sheet.data_validations.dataValidation
    assert validations and validations[0].formula1 == '"S,M,L,XL"'
    parsed = parse(workbook.template())
    assert parsed.errors == [] and len(parsed.dealers) == 1


def test_reports_neutralise_formula_like_text() -> None:
    body = workbook.outcome_report(
        [(2, "=cmd|' /C calc'!A0", "+90532", "@SUM(A1)", "S", "Failed", "-1+A2", "", "t", "")]
    )
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    values = [c.value for c in sheet[2]]
    assert values[1] == "'=cmd|' /C calc'!A0"
    assert values[3] == "'@SUM(A1)" and values[6] == "'-1+A2"
    assert values[2] == "+90532"  # a plain number: data, not a formula
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    errors = workbook.error_report([workbook.RowError(5, "Email", "bad", "=1+1")])
    sheet = load_workbook(io.BytesIO(errors)).active
    assert sheet is not None
    assert [c.value for c in sheet[2]] == [5, "Email", "bad", "'=1+1"]
