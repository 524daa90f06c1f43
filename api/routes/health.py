"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its job), for probes;
``/metrics`` for Prometheus.

Ready means: a Kafka broker answers, ClickHouse answers, the live status view has caught up
with the status topic, and — where the worker runs in this process — the worker holds
partitions. When not ready, 503 says which check failed and why.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from api.deps import sink_of, store_of
from api.errors import ApiError
from core import metrics
from schemas.responses import ErrorBody

router = APIRouter(tags=["ops"])
CHECK_SECONDS = 2.0


@router.get("/healthz", summary="Liveness (and whether the status view has caught up)")
def healthz(request: Request) -> dict[str, Any]:
    view = getattr(request.app.state, "status_view", None)
    return {"status": "ok", "statusViewReady": view is not None and view.ready.is_set()}


@router.get(
    "/readyz",
    summary="Readiness: Kafka, ClickHouse, the status view and the worker",
    responses={503: {"model": ErrorBody, "description": "NOT_READY, with each check's result"}},
)
async def readyz(request: Request) -> dict[str, Any]:
    checks = {
        "kafka": await _kafka(request),
        "clickhouse": await _clickhouse(request),
        "statusView": _status_view(request),
        "worker": _worker(request),
    }
    failed = {name: reason for name, (ok, reason) in checks.items() if not ok}
    report = {name: reason for name, (_, reason) in checks.items()}
    if failed:
        raise ApiError(
            503,
            "NOT_READY",
            "; ".join(f"{name}: {reason}" for name, reason in failed.items()),
            {"checks": report},
        )
    return {"status": "ready", "checks": report}


async def _kafka(request: Request) -> tuple[bool, str]:
    reason = await asyncio.to_thread(sink_of(request).unreachable, CHECK_SECONDS)
    return (True, "a broker answers") if reason is None else (False, reason)


async def _clickhouse(request: Request) -> tuple[bool, str]:
    try:
        await asyncio.wait_for(asyncio.to_thread(store_of(request).reader.ping), CHECK_SECONDS)
    except TimeoutError:
        return False, f"no answer within {CHECK_SECONDS:.0f} s"
    except Exception as exc:  # any failure of the store is a reason not to be ready
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return True, "answers"


def _status_view(request: Request) -> tuple[bool, str]:
    view = getattr(request.app.state, "status_view", None)
    if view is None or not view.ready.is_set():
        return False, "still reading the status topic"
    return True, "caught up"


def _worker(request: Request) -> tuple[bool, str]:
    worker = getattr(request.app.state, "worker", None)
    if worker is None:
        return True, "not in this process"
    assigned = len(worker.consumer.assignment())
    if assigned == 0:
        return False, "holds no partitions (starting or rebalancing)"
    return True, f"holds {assigned} topic partitions"


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "docs/operations.md"}},
)
async def prometheus_metrics(request: Request) -> Response:
    """No operation or sponsor id appears in any label, so this is safe to scrape without a
    token; keep it on the internal network all the same (it shows load and error rates)."""
    collectors = getattr(request.app.state, "metrics_collectors", ())
    text = await asyncio.to_thread(metrics.render, collectors)
    return Response(content=text, media_type=metrics.CONTENT_TYPE)
