"""Console sessions: a cookie naming a server-side session, CSRF, idle and
absolute timeouts.

The cookie holds 256 random bits; PostgreSQL keeps only their SHA-256
(``console_sessions``), so a copy of the table opens no session. The cookie
is ``HttpOnly``, ``SameSite=Strict``, ``Path=/`` and, over HTTPS, ``Secure``
with the ``__Host-`` prefix (no Domain attribute, so no sibling host can set
or read it). A session ends when it is signed out, when it has not been
used for ``console_idle_minutes`` (checked on every request against
``last_seen``: HIPAA §164.312(a)(2)(iii) automatic logoff) or
``console_session_hours`` after sign-in. A session of an API token also ends
the moment the token is revoked or expires: the token is looked up on every
request, by its id (the token itself is never kept).

Every state-changing request carries the session's CSRF token (synchronizer
pattern) in the form field ``csrf_token``, and must come from this origin
(``Origin`` and ``Sec-Fetch-Site`` checked when the browser sends them).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from fastapi import Request, Response

from ...domain.tokens import Caller, Role
from ...runtime import AuditLog
from ...settings import Settings
from ...store import console_sessions as store
from ...store.session import driver_connection
from ...store.tokens import get_token

MAX_FORM_BYTES = 16 * 1024
ENDED_IDLE = "idle"
ENDED_SIGNED_OUT = "signed-out"
ENDED_EXPIRED = "expired"
ENDED_REVOKED = "revoked"


@dataclass
class ConsoleConfig:
    """What one process's console needs from the settings (tests move ``now`` and ``idle``)."""

    idle: timedelta
    lifetime: timedelta
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleConfig:
        return cls(timedelta(minutes=settings.console_idle_minutes), timedelta(hours=settings.console_session_hours))


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in user of one console request, acting in ``caller.role``."""

    caller: Caller
    session_hash: bytes
    csrf_token: str
    idle_seconds: int


class SessionEnded(Exception):
    """No live session: the browser goes to the sign-in page (``why`` says why, or None)."""

    def __init__(self, why: str | None) -> None:
        super().__init__(why or "not signed in")
        self.why = why


class CsrfRefused(Exception):
    """A state-changing request without this session's token, or from another origin."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def config_of(request: Request) -> ConsoleConfig:
    config: ConsoleConfig = request.app.state.console
    return config


def cookie_name(request: Request) -> str:
    return "__Host-auditsvc-console" if request.url.scheme == "https" else "auditsvc-console"


def session_hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def set_strict_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """A cookie only this console's pages send back: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=request.url.scheme == "https", samesite="strict", path="/"
    )


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    set_strict_cookie(request, response, cookie_name(request), value)


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        cookie_name(request), path="/", httponly=True, secure=request.url.scheme == "https", samesite="strict"
    )


async def open_session(audit: AuditLog, config: ConsoleConfig, caller: Caller) -> str:
    """Store a new session for ``caller``; the cookie value to send."""
    value = secrets.token_urlsafe(32)
    now = config.now()
    async with driver_connection(audit.engine) as conn:
        await store.delete_sessions_ended_before(conn, now - timedelta(days=1))
        await store.insert_session(
            conn,
            session_hash(value),
            caller.token_id,
            caller.name,
            [r.value for r in caller.roles],
            secrets.token_urlsafe(32),
            now,
            now + config.lifetime,
        )
    return value


async def current_user(request: Request, *, activity: bool = True) -> ConsoleUser:
    """The live session of this request, activity recorded (unless ``activity``
    is false: a page's own background polling is not the user's activity);
    ``SessionEnded`` otherwise."""
    value = request.cookies.get(cookie_name(request))
    if not value:
        raise SessionEnded(None)
    audit: AuditLog = request.app.state.audit
    config = config_of(request)
    key = session_hash(value)
    now = config.now()
    async with driver_connection(audit.engine) as conn:
        stored = await store.get_session(conn, key)
        if stored is None:
            raise SessionEnded(None)
        if stored.signed_out_at is not None:
            raise SessionEnded(stored.signed_out_why)
        why = _ended(stored, now, config)
        if why is None and not stored.caller_id.startswith("oidc:"):
            token = await get_token(conn, stored.caller_id)
            if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
                why = ENDED_REVOKED
        if why is not None:
            await store.end_session(conn, key, now, why)
            raise SessionEnded(why)
        if activity:
            await store.touch_session(conn, key, now)
    roles = tuple(Role(r) for r in stored.roles)
    caller = Caller(stored.caller_id, roles[0], (), stored.caller_name, roles[1:])
    return ConsoleUser(caller, key, stored.csrf_secret, int(config.idle.total_seconds()))


def _ended(stored: store.StoredSession, now: datetime, config: ConsoleConfig) -> str | None:
    if now >= stored.expires_at:
        return ENDED_EXPIRED
    if now - stored.last_seen >= config.idle:
        return ENDED_IDLE
    return None


async def end_session_by_cookie(audit: AuditLog, config: ConsoleConfig, value: str, why: str) -> None:
    async with driver_connection(audit.engine) as conn:
        await store.end_session(conn, session_hash(value), config.now(), why)


async def end_session(request: Request, user: ConsoleUser, why: str) -> bool:
    audit: AuditLog = request.app.state.audit
    async with driver_connection(audit.engine) as conn:
        return await store.end_session(conn, user.session_hash, config_of(request).now(), why)


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (bounded), one value per field."""
    from ..deps import read_body  # the API's bounded body reader

    body = await read_body(request, MAX_FORM_BYTES)
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=64)
    return {name: values[-1] for name, values in fields.items()}


def check_origin(request: Request) -> None:
    """Refuse a state-changing request another site's page sent.

    ``Sec-Fetch-Site`` (sent by every current browser) must say the request
    came from this origin. ``Origin`` must be this console's when the
    browser names one; it sends ``null`` instead under the console's
    ``Referrer-Policy: no-referrer``, accepted only with ``Sec-Fetch-Site:
    same-origin``.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfRefused(f"the request came from another site (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin == "null":
        if site != "same-origin":
            raise CsrfRefused("the request's Origin is opaque (null)")
    elif origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise CsrfRefused("the request's Origin is not this console's")


def check_csrf(request: Request, user: ConsoleUser, form: dict[str, str]) -> None:
    check_origin(request)
    sent = form.get("csrf_token", "")
    if not sent:
        raise CsrfRefused("the form carried no CSRF token")
    if not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
        raise CsrfRefused("the form's CSRF token is not this session's")
