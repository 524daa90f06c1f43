"""CPU-bound request work spread over processes: the address checks of a long recipient list.

A send-links submit of 100,000 phone numbers spends ~3.6 s in ``phonenumbers`` on one core
while holding the GIL that the worker beside the API (in ``serve``) needs too. Slices of the
list go to a pool of processes instead: measured here on 2 cores, 3.6 s became 1.8-2.4 s,
and the API process's GIL stays free for the worker meanwhile.

The pool starts on the first list long enough to pay for it and lives until the API stops.
Its processes come from a fork server (a clean process, not a fork of this threaded one).
Each pool process exits within a second or two of the API process that started it, however
that one ended (a SIGKILL leaves no time to shut a pool down, and would otherwise leave them
and their fork server behind). A pool that broke (a process killed) is replaced, and that
list is checked here instead; after :data:`MAX_BROKEN` breaks in a row (processes that
cannot start at all) the pool is given up and every list is checked here.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import psutil

from api.services.recipients import Checked, normalise_addresses
from schemas.common import Channel

log = logging.getLogger("bulkops.api")

#: Breaks in a row after which the pool is given up.
MAX_BROKEN = 3


class CpuPool:
    """Checks addresses in ``processes`` processes once a list has ``min_items``; shorter
    lists, or ``processes`` of 0 or 1, are checked in the calling thread."""

    def __init__(self, processes: int | None, min_items: int, slice_items: int = 5000) -> None:
        self.processes = (os.cpu_count() or 1) if processes is None else processes
        self.min_items = min_items
        self.slice_items = slice_items
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._broken = 0

    def addresses(self, raws: list[str | None], channel: Channel, region: str) -> list[Checked]:
        """:func:`~api.services.recipients.normalise_addresses`, the same result in order."""
        if self.processes < 2 or len(raws) < self.min_items:
            return normalise_addresses(raws, channel, region)
        size = max(self.slice_items, -(-len(raws) // (self.processes * 4)))
        slices = [raws[i : i + size] for i in range(0, len(raws), size)]
        pool = self._started()
        try:
            parts = pool.map(
                normalise_addresses,
                slices,
                [channel] * len(slices),
                [region] * len(slices),
            )
            checked = [checked for part in parts for checked in part]
        except (BrokenProcessPool, OSError):  # OSError: submitted while the pool was breaking
            self._discard(pool)
            return normalise_addresses(raws, channel, region)
        self._broken = 0
        return checked

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                methods = multiprocessing.get_all_start_methods()
                context = multiprocessing.get_context(
                    "forkserver" if "forkserver" in methods else "spawn"
                )
                api = psutil.Process()
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=context,
                    initializer=_leave_with,
                    initargs=(api.pid, api.create_time()),
                )
                log.info("address checks: a pool of %d processes started", self.processes)
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
                self._broken += 1
                if self._broken >= MAX_BROKEN:
                    self.processes = 1
            broken = self._broken
        _kill_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        if broken >= MAX_BROKEN:
            log.error(
                "address-check processes died %d times in a row: every list is checked in the "
                "API process from now on",
                broken,
            )
        else:
            log.warning("address-check processes died: a new pool next time, this list here")


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill what is left of a broken pool's processes (they hold no state).

    CPython before 3.14 races here: a process that a submit starts while the pool is breaking
    can miss the pool's own termination. It then waits forever for the queue lock its killed
    sibling held, and the pool's manager thread waits forever to join it, so the interpreter
    never exits (seen once: CI's pytest hung after its last test). By the time a list sees
    the pool broken, every submit of that list is done, so every process is in the record.
    """
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
        return
    for process in list((pool._processes or {}).values()):
        with contextlib.suppress(ValueError):  # closed already
            process.kill()


def _leave_with(pid: int, created: float) -> None:
    """In each pool process: exit once the process ``pid`` (started at ``created``) is gone."""

    def watch() -> None:
        while True:
            time.sleep(1)
            try:
                api = psutil.Process(pid)
                if api.create_time() != created or api.status() == psutil.STATUS_ZOMBIE:
                    os._exit(0)
            except psutil.NoSuchProcess:
                os._exit(0)

    threading.Thread(target=watch, name="leave-with-the-api", daemon=True).start()
