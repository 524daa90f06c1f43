"""CPU-bound request work spread over processes: the address checks of a long recipient list.

A send-links submit of 100,000 phone numbers spends ~3.6 s in ``phonenumbers`` on one core
while holding the GIL that the worker beside the API (in ``serve``) needs too. Slices of the
list go to a pool of processes instead: measured here on 2 cores, 3.6 s became 1.8-2.4 s,
and the API process's GIL stays free for the worker meanwhile.

The pool starts on the first list long enough to pay for it and lives until the API stops.
Its processes come from a fork server (a clean process, not a fork of this threaded one).
A pool that broke (a process killed) is replaced, and that list is checked here instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from api.services.recipients import Checked, normalise_addresses
from schemas.common import Channel

log = logging.getLogger("bulkops.api")


class CpuPool:
    """Checks addresses in ``processes`` processes once a list has ``min_items``; shorter
    lists, or ``processes`` of 0 or 1, are checked in the calling thread."""

    def __init__(self, processes: int | None, min_items: int, slice_items: int = 5000) -> None:
        self.processes = (os.cpu_count() or 1) if processes is None else processes
        self.min_items = min_items
        self.slice_items = slice_items
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

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
            return [checked for part in parts for checked in part]
        except BrokenProcessPool:
            log.warning("address-check processes died: a new pool next time, this list here")
            self._discard(pool)
            return normalise_addresses(raws, channel, region)

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
                self._pool = ProcessPoolExecutor(self.processes, mp_context=context)
                log.info("address checks: a pool of %d processes started", self.processes)
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
