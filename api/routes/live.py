"""Live progress over WebSocket and Server-Sent Events.

Both follow the live status view (fed by the compacted status topic): the first message is
the operation's current state, then ``progress_update`` whenever it changes (at most
``LIVE_INTERVAL`` apart), and ``operation_completed`` once it ends, after which the stream
closes. Each connection runs on its own; a client that stops reading is dropped once a send
has waited ``SEND_TIMEOUT`` seconds, without holding anyone else up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from api.auth import CurrentPrincipal, Principal, decode_token
from api.deps import NOT_FOUND, OperationId
from api.errors import ApiError, not_found
from api.services import tickets
from api.services.presenters import API_PREFIX
from api.status_view import StatusView
from core.settings import ApiSettings
from schemas.status import OperationSnapshot

LIVE_INTERVAL = 0.25
LIST_INTERVAL = 1.0
SEND_TIMEOUT = 5.0

router = APIRouter(tags=["live"])


def progress_update(snapshot: OperationSnapshot) -> dict[str, Any]:
    """The message of a change (a ticket operation's in seed ``003_*``'s shape)."""
    if tickets.is_ticket_operation(snapshot):
        return tickets.progress_update(snapshot, datetime.now(UTC))
    total = snapshot.total_items
    recent = snapshot.recent_results[-1].item_id if snapshot.recent_results else None
    return {
        "type": "progress_update",
        "operationId": snapshot.operation_id,
        "status": snapshot.status.value,
        "currentPhase": snapshot.current_phase,
        "totalItems": total,
        "processedItems": snapshot.processed_items,
        "successfulItems": snapshot.successful_items,
        "failedItems": snapshot.failed_items,
        "skippedItems": snapshot.skipped_items,
        "progressPercentage": round(snapshot.processed_items / total * 100, 1) if total else 0.0,
        "currentItemId": recent,
        "version": snapshot.version,
        "timestamp": datetime.now(UTC).isoformat(),
    }


def operation_completed(snapshot: OperationSnapshot) -> dict[str, Any]:
    if tickets.is_ticket_operation(snapshot):
        return tickets.operation_completed(snapshot)
    return {
        "type": "operation_completed",
        "operationId": snapshot.operation_id,
        "finalStatus": snapshot.status.value,
        "successfulItems": snapshot.successful_items,
        "failedItems": snapshot.failed_items,
        "skippedItems": snapshot.skipped_items,
        "completedAt": snapshot.completed_at.isoformat() if snapshot.completed_at else None,
    }


async def follow(view: StatusView, operation_id: str) -> AsyncIterator[dict[str, Any]]:
    """Current state first, then every change (rate-limited), then the completion."""
    seen: tuple[int, datetime] | None = None
    while True:
        snapshot = await view.find(operation_id)
        if snapshot is not None:
            key = (snapshot.version, snapshot.last_updated)
            if key != seen:
                seen = key
                yield progress_update(snapshot)
                if snapshot.status.is_terminal:
                    yield operation_completed(snapshot)
                    return
        await asyncio.sleep(LIVE_INTERVAL)


async def follow_all(view: StatusView, sponsor_id: int | None) -> AsyncIterator[dict[str, Any]]:
    """Every live operation of ``sponsor_id`` (None: of every sponsor) first, then each
    change, at most every :data:`LIST_INTERVAL`; never ends."""
    seen: dict[str, tuple[int, datetime]] = {}
    while True:
        current: dict[str, tuple[int, datetime]] = {}
        for snapshot in view.visible(sponsor_id):
            key = (snapshot.version, snapshot.last_updated)
            current[snapshot.operation_id] = key
            if seen.get(snapshot.operation_id) != key:
                yield progress_update(snapshot)
        seen = current
        await asyncio.sleep(LIST_INTERVAL)


def _sse(message: dict[str, Any]) -> bytes:
    return b"event: " + message["type"].encode() + b"\ndata: " + orjson.dumps(message) + b"\n\n"


def _authorise(token: str | None, settings: ApiSettings) -> Principal:
    if not token:
        raise ApiError(401, "UNAUTHORIZED", "Missing bearer token")
    return decode_token(token, settings.jwt_secret, leeway=settings.token_leeway_seconds)


@router.websocket("/ws/bulk-operations/{operationId}")
async def websocket_progress(
    websocket: WebSocket,
    operationId: OperationId,
    access_token: Annotated[str | None, Query()] = None,
) -> None:
    """Authenticate with ``Authorization: Bearer`` or ``?access_token=`` (browsers cannot set
    headers on WebSockets). Close codes: 4401 unauthorised, 4404 unknown or not yours."""
    settings: ApiSettings = websocket.app.state.settings
    view: StatusView = websocket.app.state.status_view
    header = websocket.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else access_token
    await websocket.accept()
    try:
        principal = _authorise(token, settings)
    except ApiError as exc:
        await _refuse(websocket, 4401, exc)
        return
    snapshot = await view.find(operationId)
    if snapshot is None or not principal.can_see(snapshot.sponsor_id):
        await _refuse(websocket, 4404, not_found(operationId))
        return
    gone = asyncio.Event()

    async def watch_disconnect() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
        gone.set()

    watcher = asyncio.create_task(watch_disconnect())
    try:
        async for message in follow(view, operationId):
            if gone.is_set():
                return
            try:
                await asyncio.wait_for(websocket.send_json(message), timeout=SEND_TIMEOUT)
            except (TimeoutError, WebSocketDisconnect, RuntimeError):
                return
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=1000)
    finally:
        watcher.cancel()


async def _refuse(websocket: WebSocket, code: int, error: ApiError) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.send_json(
            {"type": "error", "success": False, "error": error.error, "message": error.message}
        )
        await websocket.close(code=code)


@router.get(
    f"{API_PREFIX}/events/{{operationId}}",
    summary="Live progress as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **NOT_FOUND},
)
async def sse_progress(
    request: Request,
    principal: CurrentPrincipal,
    operationId: OperationId,
) -> StreamingResponse:
    """``event: progress_update`` … ``event: operation_completed``, same data as the WebSocket."""
    view: StatusView = request.app.state.status_view
    snapshot = await view.find(operationId)
    if snapshot is None or not principal.can_see(snapshot.sponsor_id):
        raise not_found(operationId)

    async def events() -> AsyncIterator[bytes]:
        async for message in follow(view, operationId):
            if await request.is_disconnected():
                return
            yield _sse(message)

    return _event_stream(events())


@router.get(
    f"{API_PREFIX}/events",
    summary="Live progress of all your operations as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def sse_all_progress(request: Request, principal: CurrentPrincipal) -> StreamingResponse:
    """``event: progress_update`` for each of the caller's operations in the live view
    (running, and finished within the retention; an Admin's: every sponsor's), then for each
    change, at most once a second per operation. Dashboards follow lists with it."""
    view: StatusView = request.app.state.status_view
    scope = principal.sponsor_scope

    async def events() -> AsyncIterator[bytes]:
        yield b": following\n\n"  # headers and a first byte at once
        async for message in follow_all(view, scope):
            if await request.is_disconnected():
                return
            yield _sse(message)

    return _event_stream(events())


def _event_stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
