"""Starting a worker's processor processes, and starting a dead one again."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType

from core import metrics

log = logging.getLogger("bulkops")

_CHECK_SECONDS = 0.5
_QUICK_DEATH_SECONDS = 10.0
_MAX_BACKOFF_SECONDS = 30.0
_STOP_SECONDS = 10.0


def exit_name(code: int) -> str:
    """``0``, ``1``, … or the signal's name (``SIGKILL``) for a process a signal ended."""
    if code < 0:
        with suppress(ValueError):
            return signal.Signals(-code).name
    return str(code)


def processor_command(index: int) -> list[str]:
    """``bulkops processor``, stopping by itself if the process that started it is gone."""
    return [sys.executable, "-m", "bulkops.cli", "processor", f"--index={index}", "--watch-parent"]


class Processors:
    """``count`` processor processes (``bulkops processor``) for as long as the context
    lasts. They inherit the environment, so they read the worker's settings, and write to its
    output. One that exits is started again after a second, or after a pause that doubles
    while it keeps dying within seconds of its start (up to 30 s)."""

    def __init__(self, count: int, command: Callable[[int], list[str]] | None = None) -> None:
        self._count = count
        self._command = command or processor_command
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="bulkops-processors", daemon=True)

    def __enter__(self) -> Processors:
        for index in range(self._count):
            self._children[index] = self._spawn(index)
        metrics.PROCESSORS_RUNNING.set(len(self._children))
        if self._count:
            log.info("started %d processor processes", self._count)
            self._watcher.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join()
        for child in self._children.values():
            if child.poll() is None:
                child.terminate()
        for child in self._children.values():
            try:
                child.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        metrics.PROCESSORS_RUNNING.set(0)

    def pids(self) -> list[int]:
        return [child.pid for child in self._children.values() if child.poll() is None]

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self._command(index))

    def _watch(self) -> None:
        started = dict.fromkeys(self._children, time.monotonic())
        backoff = dict.fromkeys(self._children, 0.5)
        while not self._stopping.wait(_CHECK_SECONDS):
            metrics.PROCESSORS_RUNNING.set(len(self.pids()))
            for index, child in list(self._children.items()):
                code = child.poll()
                if code is None:
                    continue
                ended = exit_name(code)
                quick = time.monotonic() - started[index] < _QUICK_DEATH_SECONDS
                backoff[index] = min(_MAX_BACKOFF_SECONDS, backoff[index] * 2) if quick else 1.0
                log.warning(
                    "processor %d exited with %s; starting it again in %.0fs",
                    index,
                    ended,
                    backoff[index],
                )
                if self._stopping.wait(backoff[index]):
                    return
                self._children[index] = self._spawn(index)
                started[index] = time.monotonic()
                metrics.PROCESSOR_RESTARTS.labels(ended).inc()
                metrics.PROCESSORS_RUNNING.set(len(self.pids()))
