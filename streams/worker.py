"""A worker process on its own (``python -m streams`` or ``bulkops worker``): needs a
ClickHouse server, since embedded chDB lets one process own its data."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from analytics.store import AnalyticsStore
from core import heap, kafkalog, logs
from core.settings import WorkerSettings
from streams.app import build_worker
from streams.providers.factory import build_providers


class _Worker(faust.Worker):
    """Faust's worker, logging in ``BULKOPS_LOG_FORMAT`` with Kafka's repeated lines
    rate-limited like everywhere else."""

    log_format: logs.LogFormat = "text"

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        logs.reformat(logger, self.log_format)
        kafkalog.install(logger)


def run(settings: WorkerSettings) -> None:
    """Run the worker until it is stopped, with Faust's own signal handling and shutdown."""
    store = AnalyticsStore.from_settings(settings)
    app = build_worker(settings, store.writer, store.state, build_providers(settings))
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    heap.settle()
    worker = _Worker(app, loglevel=settings.log_level)
    worker.log_format = settings.log_format
    try:
        worker.execute_from_commandline()
    finally:
        store.close()
