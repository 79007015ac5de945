"""Request dependencies as ``Annotated`` aliases: ``AuditDep``, ``CallerDep``,
and the role checks (``EmitterDep``, ``AuditorDep``, ...).

Who may call what is documented, and tested route by route, in docs/roles.md.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from ..domain.errors import Forbidden, PayloadTooLarge, Unauthenticated
from ..domain.oidc import OidcConfig, OidcVerifier
from ..domain.tokens import Caller, Role, authenticate, bearer_value, looks_like_jwt, parse_api_token
from ..runtime import AuditLog
from ..settings import Settings
from ..store.session import driver_connection
from ..store.tokens import get_token
from .ratelimit import RateLimitConfig, RateLimits, install_rate_limit_handler


@dataclass
class AccessControl:
    """What authenticates and meters callers in one process."""

    oidc: OidcVerifier | None
    limits: RateLimits
    now: Callable[[], datetime] = lambda: datetime.now(UTC)  # API tokens' expiry is judged by it (tests move it)


def install_access_control(app: FastAPI, settings: Settings) -> None:
    """OIDC (when configured), the per-credential rate limits and their 429 answer."""
    app.state.access_control = AccessControl(
        OidcVerifier(OidcConfig.from_settings(settings)) if settings.oidc_enabled else None,
        RateLimits(RateLimitConfig.from_settings(settings)),
    )
    install_rate_limit_handler(app)


def get_audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


AuditDep = Annotated[AuditLog, Depends(get_audit)]


async def get_caller(request: Request, audit: AuditDep) -> Caller:
    """The authenticated caller (401 otherwise), counted against its rate limit (429)."""
    access: AccessControl = request.app.state.access_control
    value = bearer_value(request.headers.get("authorization"))
    if looks_like_jwt(value):
        if access.oidc is None:
            raise Unauthenticated("this service does not accept OIDC/JWT bearer tokens; use an auditsvc API token")
        caller = await access.oidc.authenticate(value)
    else:
        token_id, secret = parse_api_token(value)
        async with driver_connection(audit.engine) as conn:
            stored = await get_token(conn, token_id)
        caller = authenticate(stored, secret, audit.keys, access.now())
    access.limits.admit(caller)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Caller]]:
    """A dependency admitting only callers holding a role in ``roles``.

    The caller comes back acting in the first of ``roles`` it holds (an OIDC
    user may hold several), which is the role its reads are audited under.
    """

    async def _check(caller: CallerDep) -> Caller:
        for role in roles:
            if role in caller.roles:
                return caller if role is caller.role else replace(caller, role=role, other_roles=())
        names = ", ".join(sorted(r.value for r in roles))
        held = (
            f"the token's role is {caller.role.value}"
            if not caller.other_roles
            else "the token's roles are " + ", ".join(r.value for r in caller.roles)
        )
        raise Forbidden(f"this endpoint needs the role {names}; {held}")

    return _check


EmitterDep = Annotated[Caller, Depends(require(Role.EMITTER))]
PrivacyOfficerDep = Annotated[Caller, Depends(require(Role.PRIVACY_OFFICER))]
EventReaderDep = Annotated[Caller, Depends(require(Role.AUDITOR, Role.PRIVACY_OFFICER))]
AuditorDep = Annotated[Caller, Depends(require(Role.AUDITOR))]
AdminDep = Annotated[Caller, Depends(require(Role.ADMIN))]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
