"""What the API adds to ``/metrics``: the latency of every request (by route template, so the
label set stays bounded) and the live operations per type and status."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.status_view import StatusView
from core.metrics import HTTP_REQUEST_SECONDS

UNMATCHED = "unmatched"


class RequestMetrics:
    """Observes ``bulkops_http_request_duration_seconds`` for every HTTP request: the route's
    template (``/api/v1/bulk-operations/status/{operationId}``), never the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            HTTP_REQUEST_SECONDS.labels(
                scope["method"], getattr(route, "path", UNMATCHED), str(status)
            ).observe(time.perf_counter() - started)


class LiveOperations:
    """``bulkops_operations``: operations in the live status view, per type and status."""

    def __init__(self, view: StatusView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "bulkops_operations",
            "Operations in the API's live status view (running and recently finished).",
            labels=["operation_type", "status"],
        )
        for (operation_type, status), count in sorted(self._view.counts().items()):
            family.add_metric([operation_type, status], float(count))
        yield family
