"""Every Prometheus metric of the system, in one place (docs/operations.md, "Metrics").

Names follow Prometheus' conventions: a ``bulkops_`` prefix, base units (seconds, bytes),
``_total`` on counters. Labels are bounded sets (operation type, outcome, channel, route
template, topic, table, exception class); never a sponsor id or an operation id.

The metrics live in the process-wide registry, so the API and a worker in one process
(``bulkops serve``) expose them together. With ``PROMETHEUS_MULTIPROC_DIR`` set (several
API processes behind one port), values are kept in files there and summed at scrape time.
What is read from elsewhere at scrape time (consumer lag, the status view) comes from
collectors registered per app, passed to :func:`render` as ``extra``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

#: The ``Content-Type`` of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

ITEMS_PROCESSED = Counter(
    "bulkops_items_processed_total",
    "Items counted into their operation's progress, by outcome (each item once).",
    ["operation_type", "outcome"],
)
OPERATIONS_FINISHED = Counter(
    "bulkops_operations_finished_total",
    "Operations that reached a final status.",
    ["operation_type", "status"],
)
PROVIDER_REQUESTS = Counter(
    "bulkops_provider_requests_total",
    "Requests to message providers, by channel and result (success, error, rate_limited).",
    ["channel", "result"],
)
SEND_RETRIES = Counter(
    "bulkops_send_retries_total",
    "Sends attempted again after a retryable provider error.",
    ["channel"],
)
PROVIDER_LATENCY = Histogram(
    "bulkops_provider_latency_seconds",
    "Time a provider took to answer one send.",
    ["channel"],
    buckets=_LATENCY_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "bulkops_webhook_deliveries_total",
    "Webhook delivery attempts, by event and result (delivered, retrying, failed).",
    ["event", "result"],
)
JOB_RESULTS = Counter(
    "bulkops_job_results_total",
    "Answers of other systems' workers to job batches: taken, or ignored (late, repeated, "
    "for an unknown batch, or from another sponsor's or type's worker).",
    ["result"],
)
DEAD_LETTERS = Counter(
    "bulkops_dead_letters_total",
    "Messages the worker could not use, by source topic and reason (the error's class).",
    ["topic", "reason"],
)
CLICKHOUSE_WRITE_SECONDS = Histogram(
    "bulkops_clickhouse_write_seconds",
    "Time of one ClickHouse insert, by table.",
    ["table"],
    buckets=_LATENCY_BUCKETS,
)
CLICKHOUSE_ROWS_WRITTEN = Counter(
    "bulkops_clickhouse_rows_written_total", "Rows inserted into ClickHouse, by table.", ["table"]
)
CLICKHOUSE_WRITE_ERRORS = Counter(
    "bulkops_clickhouse_write_errors_total", "ClickHouse inserts that failed, by table.", ["table"]
)
CLICKHOUSE_RETRIES = Counter(
    "bulkops_clickhouse_retries_total",
    "ClickHouse calls of the worker retried after a failure (the worker waits, never skips).",
)
WRITE_BEHIND_ROWS = Gauge(
    "bulkops_write_behind_rows",
    "Operation rows waiting in the worker's write-behind buffer.",
    multiprocess_mode="livesum",
)
PROCESSORS_RUNNING = Gauge(
    "bulkops_processors_running",
    "Processor processes this worker started that are running now.",
    multiprocess_mode="livesum",
)
PROCESSOR_RESTARTS = Counter(
    "bulkops_processor_restarts_total",
    "Processor processes that exited and were started again, by exit (code or signal name).",
    ["exit"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "bulkops_http_request_duration_seconds",
    "API request latency, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)


ALERTS = Counter(
    "bulkops_operation_alerts_total",
    "Alerts raised about operations, by kind (failure_rate, stalled).",
    ["kind"],
)


def count_webhook_attempt(event: str, *, delivered: bool, final: bool) -> None:
    """One webhook delivery attempt: delivered, failed for good, or to be retried."""
    WEBHOOK_DELIVERIES.labels(
        event, "delivered" if delivered else "failed" if final else "retrying"
    ).inc()


def count_batch(operation_type: str, succeeded: int, failed: int, skipped: int) -> None:
    """A batch counted into its operation's progress (once: replays are not counted)."""
    for outcome, items in (("success", succeeded), ("failed", failed), ("skipped", skipped)):
        if items:
            ITEMS_PROCESSED.labels(operation_type, outcome).inc(items)


def observe_send(channel: str, result: str, seconds: float) -> None:
    """One request to a provider: its result and how long the provider took."""
    PROVIDER_REQUESTS.labels(channel, result).inc()
    PROVIDER_LATENCY.labels(channel).observe(seconds)


def render(extra: Iterable[Collector] = ()) -> bytes:
    """The exposition text of this process's metrics (or of every process sharing
    ``PROMETHEUS_MULTIPROC_DIR``), followed by ``extra`` collectors'."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    own = CollectorRegistry(auto_describe=False)
    for collector in extra:
        own.register(collector)
    return text + generate_latest(own)
