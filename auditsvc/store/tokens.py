"""api_tokens table access."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.tokens import StoredToken

_COLUMNS = "token_id, secret_hmac, role, systems, name, created_at, expires_at, revoked_at"


def _row(row: object) -> StoredToken:
    m = row._mapping  # type: ignore[attr-defined]
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


async def get_token(conn: AsyncConnection, token_id: str) -> StoredToken | None:
    result = await conn.execute(text(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_id = :id"), {"id": token_id})
    row = result.first()
    return _row(row) if row is not None else None


async def insert_token(
    conn: AsyncConnection,
    token_id: str,
    secret_hmac: bytes,
    role: str,
    systems: list[str],
    name: str | None,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO api_tokens (token_id, secret_hmac, role, systems, name, expires_at) "
            "VALUES (:id, :h, :role, :systems, :name, :exp)"
        ),
        {"id": token_id, "h": secret_hmac, "role": role, "systems": systems, "name": name, "exp": expires_at},
    )


async def list_tokens(conn: AsyncConnection) -> list[StoredToken]:
    result = await conn.execute(text(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, token_id"))
    return [_row(r) for r in result]


async def revoke_token(conn: AsyncConnection, token_id: str) -> bool:
    result = await conn.execute(
        text("UPDATE api_tokens SET revoked_at = now() WHERE token_id = :id AND revoked_at IS NULL"),
        {"id": token_id},
    )
    return bool(result.rowcount)
