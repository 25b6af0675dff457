"""HTTP errors with a JSON body: `{"error": {"code": ..., "message": ..., "fields": [...]}}`.

`fields` is present on 422s and names each offending input (`limit`, `title`, ...).
Routes of the OpenAI-compatible API answer in OpenAI's shape instead:
`{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`.
"""

from __future__ import annotations

from typing import Any

from chatbus_contracts.errors import ErrorCode
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(StarletteHTTPException):
    """An HTTP error with a stable code (and, for 422, the fields at fault)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, message, headers)
        self.code = code
        self.fields = fields


OPENAI_PATHS = ("/v1/chat/completions", "/v1/embeddings")
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def _error_body(
    request: Request, status_code: int, code: str, message: str, fields: list[dict[str, str]]
) -> dict[str, Any]:
    if request.url.path in OPENAI_PATHS:
        return {
            "error": {
                "message": message,
                "type": _OPENAI_TYPES.get(status_code, "api_error"),
                "param": fields[0]["field"] if fields else None,
                "code": code,
            }
        }
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


async def _render(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = getattr(exc, "code", None) or _CODES.get(exc.status_code, "error")
    fields = getattr(exc, "fields", None) or []
    return JSONResponse(
        _error_body(request, exc.status_code, code, str(exc.detail), fields),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _field_name(location: tuple[Any, ...]) -> str:
    # ("query", "limit") -> "limit"; ("body", "settings", "model") -> "settings.model"
    parts = [str(part) for part in location[1:]] or [str(location[0])]
    return ".".join(parts)


async def _render_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    if isinstance(exc, ValidationError):  # a query parameter a contract model refused
        exc = RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        )
    fields = [
        {"field": _field_name(tuple(item["loc"])), "message": item["msg"]} for item in exc.errors()
    ]
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    # The OpenAI-compatible routes answer a malformed body with 400, as OpenAI does.
    status_code = 400 if request.url.path in OPENAI_PATHS else 422
    return JSONResponse(
        _error_body(request, status_code, "invalid_request", message, fields),
        status_code=status_code,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every HTTP error, including request validation, in the chatbus JSON shape."""
    app.add_exception_handler(StarletteHTTPException, _render)
    app.add_exception_handler(RequestValidationError, _render_invalid)
    app.add_exception_handler(ValidationError, _render_invalid)


class BadRequest(ApiError):
    """A request chatbus cannot serve (400; OpenAI error shape on the OpenAI routes)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(
            400,
            ErrorCode.INVALID_REQUEST,
            message,
            fields=[{"field": param, "message": message}] if param else None,
        )


def unavailable() -> ApiError:
    """503 for a backing service that did not answer in time."""
    return ApiError(503, "unavailable", "a backing service did not answer; try again")
