"""Helpers shared by the test suites: deadlines instead of sleeps, and tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(AssertionError):
    pass


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"{message} not met within {timeout:.1f}s (last: {last!r})")
        time.sleep(interval)


def settles(read: Any, seconds: float, timeout: float) -> int:
    """Wait (up to ``timeout``) until ``read`` has not changed for ``seconds``; its value."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, f"still changing after {timeout}s: {value}"
        time.sleep(0.1)
        current = read()
        if current != value:
            value, since = current, time.monotonic()
    return int(value)
