"""Domain errors to HTTP statuses: the one place that mapping lives.

Error bodies name the problem and the field, never the offending value
(which may be a patient identifier): ``{"detail": str, "errors": [...]}``,
and ``"refused": [{"index", "reason"}]`` when the error refuses some events
of a batch (``schemas.RefusedEventOut``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain.errors import (
    AppendFailed,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
)
from ..store.session import CONNECTION_ERRORS
from .fhir_http import is_fhir_path, unexpected_error_outcome
from .security_headers import API_PREFIXES

log = logging.getLogger(__name__)

STATUS: dict[type[DomainError], int] = {
    InvalidInput: 422,
    MalformedBody: 400,
    PayloadTooLarge: 413,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
    AppendFailed: 500,
}


def _response(
    status: int,
    detail: str,
    errors: list[dict[str, object]] | None = None,
    refused: list[dict[str, object]] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"detail": detail}
    if errors:
        body["errors"] = errors
    if refused:
        body["refused"] = refused
    headers = {"Retry-After": "5"} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=status, headers=headers)


CONSOLE_500 = HTMLResponse(
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error · auditsvc</title>'
    '<link rel="stylesheet" href="/static/console.css"></head><body><main id="main">'
    '<section class="card error-page"><h1>Something went wrong</h1><p role="alert">The service could not '
    "answer this page. Nothing was changed; try again, and tell the service's operators if it persists.</p>"
    '<p><a href="/">Back to the console\'s home</a></p></section></main></body></html>',
    status_code=500,
)


class ContainUnexpectedErrors:
    """Answer 500 for any unhandled exception and log only its type and route.

    Starlette's own last-resort handler re-raises into the server, which
    logs the exception text; PostgreSQL's error DETAIL can quote a stored
    row, so that text must not reach a log.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def _send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception as exc:
            log.error("unhandled %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path"))
            if not started:
                path = str(scope.get("path", ""))
                if is_fhir_path(path):
                    answer: Response = unexpected_error_outcome()
                elif path.startswith(API_PREFIXES):
                    answer = _response(500, "internal error")
                else:
                    answer = CONSOLE_500  # the console's pages: a page, not JSON
                await answer(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(ContainUnexpectedErrors)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
        errors = exc.errors if isinstance(exc, InvalidInput) else None
        return _response(status, exc.message, errors, exc.refused)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, object]] = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                return _response(400, "request body is not valid JSON")
            errors.append({"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")})
        return _response(422, f"{len(errors)} invalid field(s) in the request", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _response(exc.status_code, str(exc.detail))

    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("request failed, database unavailable: %s", type(exc).__name__)
        return _response(503, "the database is unavailable; retry later")

    for error in CONNECTION_ERRORS:
        app.add_exception_handler(error, _database_down)
