"""Admins' read-only SQL: one analyst session per API process, opened on first use."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from fastapi import Request

from analytics.analyst import AnalystQueries, QueryRefused
from api.deps import store_of
from api.errors import ApiError
from core.settings import ApiSettings
from schemas.analytics import ResultFormat, SqlColumn, SqlResult

_OPENING = threading.Lock()


def _analyst(request: Request) -> AnalystQueries:
    state = request.app.state
    with _OPENING:
        if getattr(state, "analyst", None) is None:
            settings: ApiSettings = state.settings
            state.analyst = AnalystQueries.open(
                store_of(request).connection,
                max_rows=settings.analytics_max_rows,
                max_seconds=settings.analytics_max_seconds,
            )
        analyst: AnalystQueries = state.analyst
        return analyst


async def run(request: Request, sql: str, result_format: ResultFormat) -> bytes:
    """The query's result in ``result_format``, or 422 with what to change."""
    try:
        analyst = await asyncio.to_thread(_analyst, request)
        return await asyncio.to_thread(analyst.run, sql, result_format)
    except QueryRefused as exc:
        details = {"errors": [{"field": "sql", "message": exc.message, "type": exc.code}]}
        raise ApiError(422, exc.code, exc.message, details) from exc


def json_result(raw: bytes) -> SqlResult:
    """ClickHouse's ``JSON`` output, as the envelope's ``data``."""
    body: dict[str, Any] = json.loads(raw)
    statistics = body.get("statistics", {})
    return SqlResult(
        columns=[SqlColumn(name=c["name"], type=c["type"]) for c in body.get("meta", [])],
        rows=body.get("data", []),
        row_count=int(body.get("rows", 0)),
        elapsed_seconds=float(statistics.get("elapsed", 0.0)),
        rows_read=int(statistics.get("rows_read", 0)),
    )
