"""Sign-in and sign-out.

Sign-in takes a privacy_officer, auditor or admin credential, pasted into
the form (never a URL): an auditsvc API token, or an OIDC access/ID token
when OIDC is configured, checked by the same code the API authenticates
bearer tokens with. Emitter tokens are refused: they belong to systems
sending events. The sign-in form is protected against login CSRF by a
double-submitted random value (a cookie and a hidden field) and the origin
check. Sign-ins, refused sign-ins and sign-outs are events in the chain
(domain/console_events.py).
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from ...domain import console_events
from ...domain.errors import Forbidden, NotFound, Unauthenticated, Unavailable
from ...domain.oidc_signin import OidcSignIn, PendingSignIn
from ...domain.tokens import Caller, Role, authenticate, looks_like_jwt, parse_api_token
from ...runtime import AuditLog
from ...store.session import driver_connection
from ...store.tokens import get_token
from ..deps import AccessControl
from ..security_headers import CONSOLE_CSP
from .guard import csrf_user
from .render import plain_duration, render
from .session import (
    ENDED_IDLE,
    ENDED_SIGNED_OUT,
    ConsoleUser,
    CsrfRefused,
    check_origin,
    clear_session_cookie,
    config_of,
    cookie_name,
    end_session,
    end_session_by_cookie,
    open_session,
    read_form,
    set_session_cookie,
    set_strict_cookie,
)

router = APIRouter(include_in_schema=False)

HUMAN_ROLES = (Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN)
ENDED_MESSAGES = {
    ENDED_IDLE: "You were signed out after {duration} without activity.",
    "expired": "Your session reached its maximum length; sign in again.",
    "revoked": "Your token was revoked or has expired; sign in with a current one.",
    ENDED_SIGNED_OUT: "You are signed out.",
}
MAX_CREDENTIAL = 8192


def _signin_cookie(request: Request) -> str:
    return "__Host-auditsvc-signin" if request.url.scheme == "https" else "auditsvc-signin"


# The sign-in page's form posts to the console, which redirects the browser to
# the identity provider: browsers apply ``form-action`` to that redirect too,
# so this page's policy names the provider's origin (and nothing else changes).
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


async def _signin_csp(oidc: OidcSignIn | None) -> str | None:
    if oidc is None:
        return None
    try:
        origin = await oidc.authorization_origin()
    except Unavailable:
        return None  # the button then fails with the provider's own error, as before
    if not _ORIGIN.match(origin):
        return None
    return CONSOLE_CSP.decode().replace("form-action 'self'", f"form-action 'self' {origin}")


async def _signin_form(
    request: Request, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> Response:
    nonce = secrets.token_urlsafe(24)
    oidc = getattr(request.app.state, "console_oidc", None)
    response = render(
        request,
        "signin.html",
        None,
        {"signin_nonce": nonce, "error": error, "notice": notice, "oidc": oidc is not None},
        status_code=status,
    )
    set_strict_cookie(request, response, _signin_cookie(request), nonce, max_age=3600)
    csp = await _signin_csp(oidc)
    if csp is not None:
        response.headers["Content-Security-Policy"] = csp
    return response


@router.get("/signin")
async def signin_page(request: Request, ended: str | None = None) -> Response:
    notice = None
    if ended in ENDED_MESSAGES:
        notice = ENDED_MESSAGES[ended].format(duration=plain_duration(config_of(request).idle))
    return await _signin_form(request, notice=notice)


async def _caller_of(request: Request, credential: str) -> Caller:
    """The caller a pasted credential authenticates, as the API would (``Unauthenticated`` otherwise)."""
    audit: AuditLog = request.app.state.audit
    access: AccessControl = request.app.state.access_control
    if looks_like_jwt(credential):
        if access.oidc is None:
            raise Unauthenticated("this service does not accept OIDC tokens; use an auditsvc API token")
        return await access.oidc.authenticate(credential)
    token_id, secret = parse_api_token(credential)
    async with driver_connection(audit.engine) as conn:
        stored = await get_token(conn, token_id)
    return authenticate(stored, secret, audit.keys, access.now())


def _attempted_id(credential: str) -> str:
    """The token id of a refused credential when it had a token's shape (ids are public)."""
    try:
        return parse_api_token(credential)[0]
    except Unauthenticated:
        return "unknown"


@router.post("/signin")
async def signin(request: Request) -> Response:
    check_origin(request)
    form = await read_form(request)
    nonce = request.cookies.get(_signin_cookie(request), "")
    if not nonce or not hmac.compare_digest(nonce.encode(), form.get("signin_nonce", "").encode()):
        raise CsrfRefused("the sign-in form has expired or came from another page")
    audit: AuditLog = request.app.state.audit
    credential = form.get("token", "").strip()
    if not credential or len(credential) > MAX_CREDENTIAL:
        return await _signin_form(request, error="Paste your token into the Token field.", status=400)
    try:
        caller = await _caller_of(request, credential)
    except Unauthenticated as exc:
        await console_events.record_console_event(
            audit,
            console_events.SIGN_IN_REFUSED,
            caller_id=_attempted_id(credential),
            caller_name=None,
            role="unknown",
            attributes={"reason": "invalid-credential"},
            outcome=4,
        )
        return await _signin_form(request, error=f"Sign-in refused: {exc.message}.", status=401)
    if not any(r in HUMAN_ROLES for r in caller.roles):
        await console_events.record_console_event(
            audit,
            console_events.SIGN_IN_REFUSED,
            caller_id=caller.token_id,
            caller_name=caller.name,
            role=caller.role.value,
            attributes={"reason": "role-not-allowed"},
            outcome=4,
        )
        return await _signin_form(
            request,
            error="Emitter tokens are for systems that send events; sign in with a privacy_officer, "
            "auditor or admin token.",
            status=403,
        )
    return await _start_session(request, caller, method="token")


async def _start_session(request: Request, caller: Caller, *, method: str) -> Response:
    """Open a session for ``caller`` (human roles only), record it, go home."""
    audit: AuditLog = request.app.state.audit
    roles = tuple(r for r in caller.roles if r in HUMAN_ROLES)
    caller = Caller(caller.token_id, roles[0], (), caller.name, roles[1:])
    value = await open_session(audit, config_of(request), caller)
    previous = request.cookies.get(cookie_name(request))
    if previous:  # a sign-in replaces whatever session this browser had
        await end_session_by_cookie(audit, config_of(request), previous, ENDED_SIGNED_OUT)
    await console_events.record_console_event(
        audit,
        console_events.SIGN_IN,
        caller_id=caller.token_id,
        caller_name=caller.name,
        role=",".join(r.value for r in caller.roles),
        attributes={"method": method},
    )
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(request, response, value)
    response.delete_cookie(_signin_cookie(request), path="/")
    return response


OIDC_CALLBACK = "/signin/oidc/callback"


def _oidc_cookie(request: Request) -> str:
    return "__Host-auditsvc-oidc" if request.url.scheme == "https" else "auditsvc-oidc"


def _oidc(request: Request) -> OidcSignIn:
    signin: OidcSignIn | None = getattr(request.app.state, "console_oidc", None)
    if signin is None:
        raise NotFound("sign-in through an identity provider is not configured")
    return signin


def _redirect_uri(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{OIDC_CALLBACK}"


@router.post("/signin/oidc")
async def signin_oidc(request: Request) -> Response:
    """Send the browser to the identity provider (authorization code + PKCE)."""
    signin = _oidc(request)
    check_origin(request)
    form = await read_form(request)
    nonce = request.cookies.get(_signin_cookie(request), "")
    if not nonce or not hmac.compare_digest(nonce.encode(), form.get("signin_nonce", "").encode()):
        raise CsrfRefused("the sign-in form has expired or came from another page")
    pending = PendingSignIn.new()
    response = RedirectResponse(await signin.authorization_url(pending, _redirect_uri(request)), status_code=303)
    # Lax, not Strict: the provider's redirect back is a navigation from its site.
    response.set_cookie(
        _oidc_cookie(request),
        pending.cookie(),
        max_age=600,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/",
    )
    return response


@router.get(OIDC_CALLBACK)
async def signin_oidc_callback(request: Request) -> Response:
    """The provider's answer: check ``state``, trade the code, open a session."""
    signin = _oidc(request)
    params = request.query_params
    pending = PendingSignIn.from_cookie(request.cookies.get(_oidc_cookie(request), ""))
    state = params.get("state", "")
    if pending is None or not hmac.compare_digest(state.encode(), pending.state.encode()):
        return await _signin_form(
            request,
            error="Sign-in refused: the answer from your organisation's sign-in "
            "was not for this browser's sign-in (state). Try again.",
            status=400,
        )
    if "error" in params or not params.get("code"):
        return await _signin_form(request, error="Your organisation's sign-in did not complete. Try again.", status=401)
    audit: AuditLog = request.app.state.audit
    try:
        caller = await signin.caller(params["code"], pending, _redirect_uri(request))
    except (Unauthenticated, Forbidden) as exc:
        await console_events.record_console_event(
            audit,
            console_events.SIGN_IN_REFUSED,
            caller_id="oidc:unknown",
            caller_name=None,
            role="unknown",
            attributes={"reason": "oidc-refused"},
            outcome=4,
        )
        return await _signin_form(request, error=f"Sign-in refused: {exc.message}.", status=401)
    response = await _start_session(request, caller, method="oidc")
    response.delete_cookie(_oidc_cookie(request), path="/")
    return response


AnyUserForm = Annotated[tuple[ConsoleUser, dict[str, str]], Depends(csrf_user(*HUMAN_ROLES))]


@router.post("/signout")
async def signout(request: Request, signed_in: AnyUserForm) -> Response:
    user, form = signed_in
    why = ENDED_IDLE if form.get("reason") == ENDED_IDLE else ENDED_SIGNED_OUT
    if await end_session(request, user, why):
        await console_events.record_console_event(
            request.app.state.audit,
            console_events.SIGN_OUT,
            caller_id=user.caller.token_id,
            caller_name=user.caller.name,
            role=user.caller.role.value,
            attributes={"reason": why},
        )
    response = RedirectResponse(f"/signin?ended={why}", status_code=303)
    clear_session_cookie(request, response)
    return response


__all__ = ["cookie_name", "router"]
