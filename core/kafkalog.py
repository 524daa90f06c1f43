"""Kafka clients' log lines, through Python logging and rate-limited.

Left alone, a confluent-kafka client prints straight to stderr, and while a broker is down
it repeats "Connect to ... failed" several times a second; aiokafka (the worker's client)
logs its own reconnect attempts as often. Every confluent-kafka client the API and the CLI
create is given :func:`client_logger`, so its lines go through ``logging`` with a time, a
level and the client's name; :func:`install` puts a :class:`RepeatFilter` on the process's
log handlers, so a Kafka line that repeats is shown once per interval with the number of
repeats it stands for. Other loggers are never filtered.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

KAFKA_LOGGERS = ("aiokafka", "bulkops.kafka")
_VOLATILE = re.compile(r"\d+")
_MAX_KEYS = 1000


class RepeatFilter(logging.Filter):
    """Lets a Kafka client's message through once per ``interval`` seconds; numbers (ports,
    durations, counters) do not make a message new."""

    def __init__(
        self,
        interval: float = 60.0,
        *,
        loggers: tuple[str, ...] = KAFKA_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self._loggers = loggers
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._loggers):
            return True
        key = record.name + _VOLATILE.sub("#", record.getMessage())
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval:
                self._last[key] = (last[0], last[1] + 1)
                return False
            suppressed = last[1] if last is not None else 0
            self._last[key] = (now, 0)
            if len(self._last) > _MAX_KEYS:  # bounded: forget the oldest half
                for old in sorted(self._last, key=lambda k: self._last[k][0])[: _MAX_KEYS // 2]:
                    del self._last[old]
        if suppressed:
            text = record.getMessage()
            record.msg = f"{text} ({suppressed} like it in the last {self.interval:.0f}s)"
            record.args = None
        return True


def install(logger: logging.Logger | None = None, interval: float = 60.0) -> None:
    """Put one :class:`RepeatFilter` on every handler of ``logger`` (the root by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(interval))


def client_logger(name: str) -> logging.Logger:
    """The logger to give a confluent-kafka client as its ``logger`` setting."""
    return logging.getLogger(f"bulkops.kafka.{name}")
