"""SQL lives in the ``.sql`` files of ``analytics/sql/``, as named blocks.

A block starts at a line ``-- name: <identifier>`` and runs to the next one; comment lines
right under the name document it. Python code refers to a statement by its name only, so the
statements can be read, reviewed and run by hand (after binding their ``{name:Type}``
parameters) without reading Python.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$")


@cache
def load(filename: str) -> dict[str, str]:
    """The named blocks of ``analytics/sql/<filename>``, in file order."""
    text = files("analytics").joinpath("sql", filename).read_text(encoding="utf-8")
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _NAME.match(line)
        if match:
            name = match.group(1)
            if name in blocks:
                raise ValueError(f"{filename}: statement {name!r} is named twice")
            current = blocks[name] = []
        elif current is not None:
            current.append(line)
    statements = {name: "\n".join(lines).strip() for name, lines in blocks.items()}
    empty = [name for name, statement in statements.items() if not _code(statement)]
    if empty:
        raise ValueError(f"{filename}: statements without SQL: {empty}")
    return statements


def _code(statement: str) -> str:
    return "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
