"""What every route module shares: the envelope, the operation-id parameter, app state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

from analytics.store import AnalyticsStore
from api.auth import Principal
from api.errors import not_found, validation_error
from api.producer import MessageSink
from api.services.parallel import CpuPool
from api.status_view import StatusView
from core.settings import ApiSettings
from schemas.messages import OPERATION_ID_PATTERN
from schemas.responses import ErrorBody
from schemas.status import OperationSnapshot

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A body that is not JSON (or not UTF-8)"},
    401: {"model": ErrorBody, "description": "Missing, expired or forged token"},
    403: {"model": ErrorBody, "description": "Role not allowed"},
    422: {"model": ErrorBody, "description": "Invalid request, with the field at fault"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown, or another sponsor's"}
}
OperationId = Annotated[str, Path(pattern=OPERATION_ID_PATTERN, max_length=64)]


def settings_of(request: Request) -> ApiSettings:
    return request.app.state.settings


def view_of(request: Request) -> StatusView:
    return request.app.state.status_view


def store_of(request: Request) -> AnalyticsStore:
    return request.app.state.store


def pool_of(request: Request) -> CpuPool:
    return request.app.state.cpu_pool


def sink_of(request: Request) -> MessageSink:
    return request.app.state.message_sink


def visible(request: Request, principal: Principal, operation_id: str) -> OperationSnapshot:
    """The operation's snapshot (live, or archived once it left the status topic) if the
    caller may see it; 404 otherwise. Blocking: call from sync routes or a thread."""
    snapshot = view_of(request).lookup(operation_id)
    if snapshot is None or not principal.can_see(snapshot.sponsor_id):
        raise not_found(operation_id)
    return snapshot


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def _route_query_names(route: APIRoute) -> frozenset[str]:
    """A route's declared query parameters, worked out once per route (kept on the route:
    routes are not hashable), not on every request."""
    names: frozenset[str] | None = getattr(route, "_bulkops_query_names", None)
    if names is None:
        names = _query_names(route.dependant)
        setattr(route, "_bulkops_query_names", names)  # noqa: B010 - not an attribute of APIRoute
    return names


async def refuse_unknown_query(connection: HTTPConnection) -> None:
    """Refuse query parameters a route does not declare, as unknown body fields are refused,
    and a parameter given twice (every declared one takes one value).

    A misspelt ``pagesize=500`` would otherwise be ignored without a word and the caller would
    page through 50 at a time wondering why; ``status=Failed&status=Paused`` would filter by
    the last one only. ``async``: a plain function would cost every request a hop through the
    thread pool.
    """
    route = connection.scope.get("route")
    if not isinstance(route, APIRoute):  # a WebSocket route declares what it reads itself
        return
    known = _route_query_names(route)
    seen: set[str] = set()
    for name, _ in connection.query_params.multi_items():
        if name not in known:
            raise validation_error(f"query.{name}", "unknown query parameter")
        if name in seen:
            raise validation_error(f"query.{name}", "given more than once; give it once")
        seen.add(name)
