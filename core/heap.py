"""Garbage-collector settings for long-running processes.

A Bulkops process holds a large, long-lived heap (Faust, FastAPI, pydantic schemas, the
chDB binding). CPython's full collections walk all of it: measured in ``bulkops serve``
after a soak, each took 160-250 ms on this machine, several in a row under load, and every
status request waited for them (p99 0.45-0.9 s at 500 requests/s). Freezing what exists
once the process has started moves it out of the collector's sight, and a higher first
threshold makes young collections rarer; cycles created later are still collected.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger("bulkops")

# A collection slower than this is logged (it stalled every request and message meanwhile).
SLOW_COLLECTION_SECONDS = 0.1
# Allocations before a young collection (CPython's default: 700); the older generations keep
# their default ratios.
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Call once the process has started: collect, freeze the survivors, raise the threshold."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    if _log_slow not in gc.callbacks:
        gc.callbacks.append(_log_slow)
    log.info("heap settled: %d objects frozen out of collections", gc.get_freeze_count())


_started = 0.0


def _log_slow(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
        return
    took = time.perf_counter() - _started
    if took > SLOW_COLLECTION_SECONDS:
        log.warning(
            "garbage collection of generation %d took %.0f ms (%d objects freed)",
            info["generation"],
            took * 1000,
            info["collected"],
        )
