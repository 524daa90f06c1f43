"""Spreadsheet-safe cells: formula-like text is quoted, plain numbers are data."""

from __future__ import annotations

import pytest

from core.cells import safe_cell


@pytest.mark.parametrize(
    "value",
    ["=1+1", '=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\r=1", "-", "+"],
)
def test_formula_like_text_is_quoted(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-5", "+905321234567", "-1.5", "+3.2e4", "-.5", "abc", ""])
def test_numbers_and_plain_text_are_left_alone(value: str) -> None:
    assert safe_cell(value) == value


@pytest.mark.parametrize("value", [None, 5, -1.5, True])
def test_values_that_are_not_text_are_left_alone(value: object) -> None:
    assert safe_cell(value) == value
