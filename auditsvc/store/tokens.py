"""api_tokens table access."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from ..domain.tokens import StoredToken
from .session import Connection

_COLUMNS = "token_id, secret_hmac, role, systems, name, created_at, expires_at, revoked_at"


def _row(m: asyncpg.Record) -> StoredToken:
    return StoredToken(
        token_id=m["token_id"],
        secret_hmac=bytes(m["secret_hmac"]),
        role=m["role"],
        systems=tuple(m["systems"]),
        name=m["name"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
    )


async def get_token(conn: Connection, token_id: str) -> StoredToken | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_id = $1", token_id)
    return _row(row) if row is not None else None


async def insert_token(
    conn: Connection,
    token_id: str,
    secret_hmac: bytes,
    role: str,
    systems: list[str],
    name: str | None,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        "INSERT INTO api_tokens (token_id, secret_hmac, role, systems, name, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        token_id,
        secret_hmac,
        role,
        systems,
        name,
        expires_at,
    )


async def list_tokens(conn: Connection) -> list[StoredToken]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, token_id")
    return [_row(r) for r in rows]


async def revoke_token(conn: Connection, token_id: str) -> bool:
    """Revoke an active token; False when there is no active token of that id."""
    status = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL", token_id
    )
    return status != "UPDATE 0"


async def issue_token(
    conn: Connection,
    token_id: str,
    secret_hmac: bytes,
    role: str,
    systems: list[str],
    name: str | None,
    expires_at: datetime | None,
) -> None:
    """Insert a new token as the runtime role may: through migration 0011's
    function, which only ever inserts."""
    await conn.execute(
        "SELECT auditsvc_issue_token($1, $2, $3, $4, $5, $6)", token_id, secret_hmac, role, systems, name, expires_at
    )


async def revoke_token_now(conn: Connection, token_id: str) -> bool:
    """Revoke an active token as the runtime role may (migration 0012's
    function: sets ``revoked_at``, never clears it); False when none is active."""
    return bool(await conn.fetchval("SELECT auditsvc_revoke_token($1)", token_id))
