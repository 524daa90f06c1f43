"""Helpers shared by the test suites: deadlines instead of sleeps, fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).parents[1]


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


def run_script(script: str, *args: str, timeout: float = 120) -> str:
    """Run ``script`` in a fresh Python from the repository root (what this process imported
    or opened long ago cannot hide the effect under test); fail on a non-zero exit. Its
    standard output."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
