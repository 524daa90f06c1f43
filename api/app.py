"""The FastAPI application factory.

``create_api`` wires routes, errors, the body-size guard and the lifespan. What the lifespan
starts is passed in, so the same app serves in three shapes: API only (server ClickHouse),
API + Faust worker in one process (embedded chDB: ``bulkops up``), and tests with fakes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ERRORS, refuse_unknown_query
from api.errors import install_error_handlers
from api.observability import RequestMetrics
from api.routes import webui
from api.routes.admin import router as admin_router
from api.routes.dashboard import router as dashboard_router
from api.routes.dealers import DEALER_PREFIX, inventory_router
from api.routes.dealers import router as dealers_router
from api.routes.health import router as health_router
from api.routes.job_types import router as job_types_router
from api.routes.jobs import router as jobs_router
from api.routes.lifecycle import router as lifecycle_router
from api.routes.live import router as live_router
from api.routes.operations import router as operations_router
from api.routes.quotas import router as quotas_router
from api.routes.submit import router as submit_router
from api.routes.tickets import router as tickets_router
from api.services.parallel import CpuPool
from api.services.presenters import API_PREFIX
from core.settings import ApiSettings
from schemas.responses import ErrorBody

log = logging.getLogger("bulkops.api")

Lifespan = Callable[[FastAPI], Any]


class BodySizeLimit:
    """413 for bodies over ``max_bytes``, by Content-Length or while streaming a chunked body."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit():
                if int(value) > limit:
                    await self._reject(scope, receive, send, limit)
                    return
                await self.app(scope, receive, send)
                return
        # No Content-Length (chunked): read the body up to the limit before the app sees it.
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await self._reject(scope, receive, send, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        body = ErrorBody(
            error="PAYLOAD_TOO_LARGE",
            message=f"Request body over {limit} bytes",
            details={"maxBytes": limit},
        )
        await JSONResponse(status_code=413, content=body.model_dump(mode="json"))(
            scope, receive, send
        )


def create_api(
    settings: ApiSettings,
    *,
    start: Callable[[FastAPI], Awaitable[None]],
    stop: Callable[[FastAPI], Awaitable[None]],
) -> FastAPI:
    """``start`` must set ``app.state.message_sink``, ``status_view``, ``quota_view`` and
    ``store``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start(app)
        log.info("API ready: docs at http://%s:%d/docs", settings.host, settings.port)
        try:
            yield
        finally:
            try:
                await stop(app)
            finally:
                await asyncio.to_thread(app.state.cpu_pool.close)

    app = FastAPI(
        title="Bulkops",
        version="0.1.0",
        summary="Bulk operations on Kafka: one request, many items, live progress, history.",
        description=(
            "Authenticate with `Authorization: Bearer <JWT>` (role `Sponsor` with a `sponsorId` "
            "claim, or `Admin`). Mint a dev token with `bulkops token --sponsor-id 7`. Every "
            "error has the envelope `{success: false, error, message, details}`."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.cpu_pool = CpuPool(
        settings.address_check_processes, settings.address_check_parallel_from
    )
    install_error_handlers(app)
    for router in (
        submit_router,
        operations_router,
        lifecycle_router,
        dashboard_router,
        live_router,
        dealers_router,
        inventory_router,
        quotas_router,
        job_types_router,
        jobs_router,
        tickets_router,
        admin_router,
    ):
        app.include_router(router, responses=ERRORS, dependencies=[Depends(refuse_unknown_query)])

    app.include_router(health_router)
    webui.install(app)

    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        per_path={
            f"{API_PREFIX}/send-links": settings.max_link_send_body_bytes,
            f"{API_PREFIX}/jobs": settings.max_job_body_bytes,
            "/api/v1/tickets/bulk-operations": settings.max_job_body_bytes,
            # the file plus the multipart envelope; the route checks the file's own size
            f"{DEALER_PREFIX}/invite-bulk": settings.dealer_max_file_bytes + 65_536,
        },
    )
    app.add_middleware(RequestMetrics)  # outermost: a 413 is timed too
    return app
