"""What every route module shares: the envelope, the operation-id parameter, app state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request

from analytics.store import AnalyticsStore
from api.auth import Principal
from api.errors import not_found
from api.producer import MessageSink
from api.status_view import StatusView
from core.settings import ApiSettings
from schemas.messages import (
    OPERATION_ID_PATTERN,
    OperationSnapshot,
)
from schemas.responses import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, expired or forged token"},
    403: {"model": ErrorBody, "description": "Role not allowed"},
    422: {"model": ErrorBody, "description": "Invalid request, with the field at fault"},
}
OperationId = Annotated[str, Path(pattern=OPERATION_ID_PATTERN, max_length=64)]


def settings_of(request: Request) -> ApiSettings:
    return request.app.state.settings


def view_of(request: Request) -> StatusView:
    return request.app.state.status_view


def store_of(request: Request) -> AnalyticsStore:
    return request.app.state.store


def sink_of(request: Request) -> MessageSink:
    return request.app.state.message_sink


def visible(request: Request, principal: Principal, operation_id: str) -> OperationSnapshot:
    snapshot = view_of(request).get(operation_id)
    if snapshot is None or not principal.can_see(snapshot.sponsor_id):
        raise not_found(operation_id)
    return snapshot
