"""A worker process on its own (``python -m streams`` or ``bulkops worker``): needs a
ClickHouse server, since embedded chDB lets one process own its data."""

from __future__ import annotations

import logging

import faust

from analytics.store import AnalyticsStore
from core import heap, kafkalog
from core.settings import WorkerSettings
from streams.app import build_worker
from streams.providers.factory import build_providers


class _Worker(faust.Worker):
    """Faust's worker, with Kafka's repeated log lines rate-limited like everywhere else."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        kafkalog.install(logger)


def run(settings: WorkerSettings) -> None:
    """Run the worker until it is stopped, with Faust's own signal handling and shutdown."""
    store = AnalyticsStore.from_settings(settings)
    app = build_worker(settings, store.writer, store.state, build_providers(settings))
    heap.settle()
    try:
        _Worker(app, loglevel=settings.log_level).execute_from_commandline()
    finally:
        store.close()
