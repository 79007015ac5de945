"""Who may see a console page, and the pages a refusal or an error shows.

``console_user(*roles)`` is the route guard: it answers the signed-in user
acting in the first of ``roles`` they hold; with no live session a GET is
sent to the sign-in page (saying why the session ended) and anything else
gets 401; a user without the role gets a 403 page naming the role needed.
``csrf_user(*roles)`` does the same for a state-changing request and checks
its CSRF token and origin, answering the user and the parsed form.

Errors on console paths are pages, not the API's JSON: the domain's errors
keep their status and message (which never quote PHI).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...domain.errors import DomainError, InvalidInput
from ...domain.tokens import Role
from ..errors import STATUS
from ..security_headers import API_PREFIXES
from .render import error_page, render
from .session import ConsoleUser, CsrfRefused, SessionEnded, check_csrf, current_user, read_form


def is_console_path(path: str) -> bool:
    """Every path the API does not own is the console's (the documentation pages are the API's)."""
    return not path.startswith((*API_PREFIXES, "/docs", "/redoc"))


class RoleRefused(Exception):
    def __init__(self, user: ConsoleUser, roles: tuple[Role, ...]) -> None:
        super().__init__("role refused")
        self.user = user
        self.roles = roles


def acting_as(user: ConsoleUser, roles: tuple[Role, ...]) -> ConsoleUser:
    """``user`` acting in the first of ``roles`` they hold (``RoleRefused`` otherwise)."""
    for role in roles:
        if role in user.caller.roles:
            caller = user.caller
            if role is not caller.role:
                caller = replace(caller, role=role, other_roles=tuple(r for r in caller.roles if r is not role))
            return replace(user, caller=caller)
    raise RoleRefused(user, roles)


def console_user(*roles: Role) -> Callable[[Request], Awaitable[ConsoleUser]]:
    async def _guard(request: Request) -> ConsoleUser:
        user = await current_user(request)
        request.state.console_user = user  # for the refusal and error pages' navigation
        return acting_as(user, roles)

    return _guard


def csrf_user(*roles: Role) -> Callable[[Request], Awaitable[tuple[ConsoleUser, dict[str, str]]]]:
    async def _guard(request: Request) -> tuple[ConsoleUser, dict[str, str]]:
        user = await current_user(request)
        request.state.console_user = user
        user = acting_as(user, roles)
        form = await read_form(request)
        check_csrf(request, user, form)
        return user, form

    return _guard


async def _answer(result: Any) -> Any:
    """The API's own handler's answer (handlers may be sync or async)."""
    return await result if inspect.isawaitable(result) else result


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query")]
    return ".".join(parts) or "request"


def _role_names(roles: tuple[Role, ...]) -> str:
    return " or ".join(r.value for r in roles)


def install_console_errors(app: FastAPI) -> None:
    """Pages for the console's refusals, and for errors on console paths."""

    @app.exception_handler(SessionEnded)
    async def _signed_out(request: Request, exc: SessionEnded) -> Response:
        if request.method == "GET" or request.url.path == "/signout":
            target = "/signin" if exc.why is None else f"/signin?ended={exc.why}"
            return RedirectResponse(target, status_code=303)
        return error_page(request, None, 401, "Signed out", "Your session has ended; sign in again.")

    @app.exception_handler(RoleRefused)
    async def _refused(request: Request, exc: RoleRefused) -> Response:
        held = ", ".join(r.value for r in exc.user.caller.roles)
        return error_page(
            request,
            exc.user,
            403,
            "Not available to your role",
            f"This page needs the role {_role_names(exc.roles)}; you are signed in as {held}.",
        )

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return error_page(
            request,
            getattr(request.state, "console_user", None),
            403,
            "Request refused",
            f"The request was refused to protect your session: {exc.reason}. Reload the page and try again.",
        )

    domain_handler = app.exception_handlers[DomainError]
    http_handler = app.exception_handlers[StarletteHTTPException]

    async def _domain(request: Request, exc: Exception) -> Any:
        if not is_console_path(request.url.path) or not isinstance(exc, DomainError):
            return await _answer(domain_handler(request, exc))
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
        message = exc.message
        if isinstance(exc, InvalidInput) and exc.errors:
            # The fields and reasons; never the values (they may be PHI).
            named = "; ".join(f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors)
            message = f"{message}. {named}"
        return error_page(request, getattr(request.state, "console_user", None), status, "Not done", message)

    async def _http(request: Request, exc: Exception) -> Any:
        if not is_console_path(request.url.path) or not isinstance(exc, StarletteHTTPException):
            return await _answer(http_handler(request, exc))
        if exc.status_code == 404:
            return render(request, "not_found.html", None, status_code=404)
        return error_page(request, None, exc.status_code, "Not done", str(exc.detail))

    app.exception_handlers[DomainError] = _domain
    app.exception_handlers[StarletteHTTPException] = _http
