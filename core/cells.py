"""Spreadsheet-safe cells for every file a person may open in Excel (OWASP: CSV injection).

A text cell that begins like a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) gets
a leading apostrophe, so a spreadsheet shows it as text and never runs it. A cell that is a
plain number (``-5``, ``+3.2e4``) is left alone: it is data, and cannot run anything.
"""

from __future__ import annotations

import re
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value``, or as text a spreadsheet will not evaluate."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value
