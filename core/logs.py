"""Log set-up of every process: text for people, or one JSON object per line for machines.

``BULKOPS_LOG_FORMAT=json`` gives lines like
``{"level": "INFO", "logger": "bulkops.worker", "message": "operation op-1: Completed ...",
"operation_id": "op-1", "sponsor_id": 7, "timestamp": "2026-11-28T08:28:43.265916+00:00"}``.
Lines about an operation carry its ids as fields, so a log pipeline can filter one
operation's life without parsing messages: lifecycle lines pass them (:func:`about`); every
other line follows the convention ``log.info("operation %s: ...", operation_id, ...)``, from
which :class:`OperationFields` takes the id. The text format shows the same lines unchanged,
the ids already being in the message.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from core import kafkalog

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OPERATION_PREFIX = "operation %s:"


class OperationFields(logging.Filter):
    """Sets ``operation_id`` on a record logged as ``"operation %s: ..."`` without one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            not hasattr(record, "operation_id")
            and isinstance(record.msg, str)
            and record.msg.startswith(_OPERATION_PREFIX)
            and isinstance(record.args, tuple)
            and record.args
        ):
            record.operation_id = str(record.args[0])
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
        )
    return logging.Formatter(TEXT_FORMAT)


def configure(level: str, log_format: LogFormat) -> None:
    """One stderr handler on the root logger in ``log_format``; Kafka clients' repeated lines
    rate-limited (:mod:`core.kafkalog`)."""
    handler = logging.StreamHandler(sys.stderr)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    reformat(logging.getLogger(), log_format)
    kafkalog.install()


def reformat(logger: logging.Logger, log_format: LogFormat) -> None:
    """Give ``logger``'s handlers (ours, or those Faust's worker installed) our format and
    the operation id field."""
    for handler in logger.handlers:
        handler.setFormatter(formatter(log_format))
        if not any(isinstance(f, OperationFields) for f in handler.filters):
            handler.addFilter(OperationFields())


def about(
    operation_id: str, sponsor_id: int | None = None, batch_index: int | None = None
) -> dict[str, object]:
    """The ``extra`` of a log line about an operation (and a batch of it)."""
    fields: dict[str, object] = {"operation_id": operation_id}
    if sponsor_id is not None:
        fields["sponsor_id"] = sponsor_id
    if batch_index is not None:
        fields["batch_index"] = batch_index
    return fields
