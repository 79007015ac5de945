"""Request dependencies as ``Annotated`` aliases: ``AuditDep``, ``CallerDep``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from ..domain.errors import Forbidden, PayloadTooLarge
from ..domain.tokens import Caller, Role, authenticate, parse_bearer
from ..runtime import AuditLog
from ..store.tokens import get_token


def get_audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


AuditDep = Annotated[AuditLog, Depends(get_audit)]


async def get_caller(request: Request, audit: AuditDep) -> Caller:
    token_id, secret = parse_bearer(request.headers.get("authorization"))
    async with audit.engine.connect() as conn:
        stored = await get_token(conn, token_id)
    return authenticate(stored, secret, audit.keys, datetime.now(UTC))


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Caller]]:
    """A dependency admitting only callers whose role is in ``roles``."""
    allowed = frozenset(roles)

    async def _check(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if caller.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Forbidden(f"this endpoint needs the role {names}; the token's role is {caller.role.value}")
        return caller

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
