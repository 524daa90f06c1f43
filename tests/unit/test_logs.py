"""Log lines as JSON objects with the operation's ids as fields, or as text, unchanged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core import logs


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    log = logging.getLogger("bulkops.test-logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield log, out, handler
    finally:
        log.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_the_operation_fields(
    logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    log, out, _ = logger
    logs.reformat(log, "json")
    log.info("operation %s: Completed (%d succeeded)", "op-1", 10, extra=logs.about("op-1", 7))
    log.warning("operation %s: batch %d held", "op-2", 3)  # the convention alone
    log.info("operation %s: batch %d", "op-3", 4, extra=logs.about("op-3", 8, batch_index=4))
    log.info("created topics: %s", "a, b")
    first, second, third, fourth = lines(out)
    assert first["message"] == "operation op-1: Completed (10 succeeded)"
    assert (first["level"], first["logger"]) == ("INFO", "bulkops.test-logs")
    assert (first["operation_id"], first["sponsor_id"]) == ("op-1", 7)
    assert str(first["timestamp"]).endswith("+00:00")
    assert (second["operation_id"], second["level"]) == ("op-2", "WARNING")
    assert "sponsor_id" not in second
    assert (third["operation_id"], third["sponsor_id"], third["batch_index"]) == ("op-3", 8, 4)
    assert "operation_id" not in fourth


def test_exceptions_stay_inside_one_json_line(
    logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    log, out, _ = logger
    logs.reformat(log, "json")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("operation %s: failed", "op-9")
    (line,) = lines(out)
    assert line["operation_id"] == "op-9" and "ValueError: bad" in str(line["exc_info"])


def test_text_lines_are_unchanged(
    logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    log, out, handler = logger
    logs.reformat(log, "text")
    logs.reformat(log, "text")  # set up twice: still one filter
    assert len(handler.filters) == 1
    log.info("operation %s: queued", "op-1", extra=logs.about("op-1", 7))
    assert out.getvalue().rstrip().endswith("INFO bulkops.test-logs: operation op-1: queued")
