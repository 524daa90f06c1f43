"""One error envelope for every failure: ``{success: false, error, message, details}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.responses import ErrorBody

log = logging.getLogger("bulkops.api")


class ApiError(Exception):
    """Raised by routes; rendered by the handler below."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.message = message
        self.details = details
        self.headers = headers


def validation_error(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "VALIDATION_FAILED",
        f"{field}: {message}",
        {"errors": [{"field": field, "message": message, "type": "value_error"}]},
    )


def not_found(operation_id: str) -> ApiError:
    return ApiError(404, "OPERATION_NOT_FOUND", f"No operation {operation_id} for this caller")


def _render(
    status_code: int, body: ErrorBody, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status_code, content=body.model_dump(mode="json"), headers=headers
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _render(
            exc.status_code,
            ErrorBody(error=exc.error, message=exc.message, details=exc.details),
            exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field(tuple(e.get("loc", ()))),
                "message": e.get("msg", ""),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return _render(
            422,
            ErrorBody(
                error="VALIDATION_FAILED",
                message=f"{first['field']}: {first['message']}",
                details={"errors": errors},
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _render(
            exc.status_code,
            ErrorBody(
                error=_STATUS_CODES.get(exc.status_code, "HTTP_ERROR"), message=str(exc.detail)
            ),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _render(
            500, ErrorBody(error="SYSTEM_ERROR", message="Internal error; it has been logged")
        )
