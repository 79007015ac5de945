"""Token administration from the service (the console's admin page): list,
issue and revoke API tokens, each change recorded in the chain.

The command line (cli/tokens.py) writes ``api_tokens`` as the owner; the
service's runtime role may not, and goes through migration 0011's two
functions, which can only insert a token or revoke one. An issued or revoked
token is an ``auditsvc`` event (type ``credential-change``, the admin as
actor, the token as subject ``urn:auditsvc:token|<token id>``; its role,
bound systems and name in the attributes, never its secret), so the activity
record shows who created which credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auditsvc_sdk import Identifier, PhiAccess
from auditsvc_sdk.wire import wire_event

from ..runtime import AuditLog
from ..store import tokens as store
from ..store.session import driver_connection
from .errors import InvalidInput, NotFound
from .ingest import prepare
from .reserved import SERVICE_SYSTEM_ID
from .tokens import Caller, Role, StoredToken, new_token

CREDENTIAL_EVENT_TYPE = "credential-change"
SUBJECT_SYSTEM = "urn:auditsvc:token"
MAX_NAME = 200


def token_state(token: StoredToken, now: datetime) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def token_view(token: StoredToken, now: datetime) -> dict[str, Any]:
    """A token as listed: never its secret or its hash."""
    return {
        "token_id": token.token_id,
        "role": token.role,
        "systems": list(token.systems),
        "name": token.name,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "state": token_state(token, now),
    }


async def list_token_views(audit: AuditLog) -> list[dict[str, Any]]:
    async with driver_connection(audit.engine) as conn:
        tokens = await store.list_tokens(conn)
    now = datetime.now(UTC)
    return [token_view(t, now) for t in tokens]


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str  # shown once, never stored
    role: str
    seq: int  # the chain event that records it


def _credential_event(admin: Caller, token_id: str, action: str, attributes: dict[str, str]) -> PhiAccess:
    return PhiAccess(
        occurred_at=datetime.now(UTC),
        action="C" if action == "issued" else "U",
        event_type=CREDENTIAL_EVENT_TYPE,
        patient={"identifiers": [Identifier(system=SUBJECT_SYSTEM, value=token_id)]},
        data_elements=["ApiToken"],
        source={"system_id": SERVICE_SYSTEM_ID, "name": "auditsvc audit log"},
        destination={"system_id": f"{SERVICE_SYSTEM_ID}:tokens"},
        actor={
            k: v
            for k, v in {"id": admin.token_id, "type": "user", "role": admin.role.value, "name": admin.name}.items()
            if v is not None
        },
        outcome=0,
        attributes={"change": action, "token_id": token_id, **attributes},
    )


async def _record(audit: AuditLog, admin: Caller, event: PhiAccess) -> int:
    results, _ = await audit.appender.append_batch(prepare([wire_event(event)], audit.keys, admin.token_id))
    return int(results[0].seq)


async def issue(
    audit: AuditLog, admin: Caller, role: Role, systems: list[str], name: str | None, expires_at: datetime | None
) -> IssuedToken:
    """Create a token (recorded in the chain first) and return it, once."""
    name = (name or "").strip() or None
    if name is not None and len(name) > MAX_NAME:
        raise InvalidInput(f"name: at most {MAX_NAME} characters", [{"loc": ["name"], "msg": "too long"}])
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput("expires_at: in the past", [{"loc": ["expires_at"], "msg": "in the past"}])
    token = new_token(audit.keys, role, systems)
    attributes = {"role": role.value}
    if systems:
        attributes["systems"] = ",".join(systems)
    if name:
        attributes["name"] = name
    if expires_at:
        attributes["expires_at"] = expires_at.isoformat()
    seq = await _record(audit, admin, _credential_event(admin, token.token_id, "issued", attributes))
    async with driver_connection(audit.engine) as conn:
        await store.issue_token(conn, token.token_id, token.secret_hmac, role.value, systems, name, expires_at)
    return IssuedToken(token.token_id, token.token, role.value, seq)


async def revoke(audit: AuditLog, admin: Caller, token_id: str) -> int:
    """Revoke an active token; the chain seq that records it (404 when no
    active token has that id)."""
    async with driver_connection(audit.engine) as conn:
        revoked = await store.revoke_token_now(conn, token_id)
    if not revoked:
        raise NotFound("no active token with that id")
    return await _record(audit, admin, _credential_event(admin, token_id, "revoked", {}))
