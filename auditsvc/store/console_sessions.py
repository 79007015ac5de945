"""console_sessions and console_searches (migration 0012): the web console's
server-side sessions, its saved searches, and the identifier systems seen.

A session is found by the SHA-256 of its cookie value; the domain decides
what makes one live (api/console/session.py). Every statement here reads by
primary key or a short index range, except ``IDENTIFIER_SYSTEMS_SQL``, a
skip scan whose cost is bounded by the number of systems it returns
(tests/test_console_plans.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .session import Connection


@dataclass(frozen=True)
class StoredSession:
    session_hash: bytes
    caller_id: str
    caller_name: str | None
    roles: tuple[str, ...]
    csrf_secret: str
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    signed_out_at: datetime | None
    signed_out_why: str | None


_COLUMNS = (
    "session_hash, caller_id, caller_name, roles, csrf_secret, created_at, last_seen, expires_at, "
    "signed_out_at, signed_out_why"
)

# One probe of patient_identifiers_system per system seen: the next system
# after the last one (a loose index scan), at most $2 of them.
IDENTIFIER_SYSTEMS_SQL = """
WITH RECURSIVE seen(system, n) AS (
    (SELECT system, 1 FROM patient_identifiers WHERE log_id = $1 ORDER BY system LIMIT 1)
    UNION ALL
    SELECT next.system, seen.n + 1 FROM seen
    CROSS JOIN LATERAL (
        SELECT p.system FROM patient_identifiers p
        WHERE p.log_id = $1 AND p.system > seen.system ORDER BY p.system LIMIT 1
    ) next
    WHERE seen.n < $2
)
SELECT system FROM seen
"""


async def insert_session(
    conn: Connection,
    session_hash: bytes,
    caller_id: str,
    caller_name: str | None,
    roles: list[str],
    csrf_secret: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO console_sessions (session_hash, caller_id, caller_name, roles, csrf_secret, created_at, "
        "last_seen, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        session_hash,
        caller_id,
        caller_name,
        roles,
        csrf_secret,
        now,
        expires_at,
    )


async def get_session(conn: Connection, session_hash: bytes) -> StoredSession | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM console_sessions WHERE session_hash = $1", session_hash)
    if row is None:
        return None
    return StoredSession(**{**dict(row), "session_hash": bytes(row["session_hash"]), "roles": tuple(row["roles"])})


async def touch_session(conn: Connection, session_hash: bytes, now: datetime) -> None:
    """Record activity: the idle timeout counts from ``now``."""
    await conn.execute(
        "UPDATE console_sessions SET last_seen = greatest(last_seen, $2) WHERE session_hash = $1", session_hash, now
    )


async def end_session(conn: Connection, session_hash: bytes, now: datetime, why: str) -> bool:
    """Mark the session signed out (once) and forget its searches (sealed
    identifiers have no reason to outlive it); whether this call ended it."""
    async with conn.transaction():
        status = await conn.execute(
            "UPDATE console_sessions SET signed_out_at = $2, signed_out_why = $3 "
            "WHERE session_hash = $1 AND signed_out_at IS NULL",
            session_hash,
            now,
            why,
        )
        await conn.execute("DELETE FROM console_searches WHERE session_hash = $1", session_hash)
    return bool(status.endswith(" 1"))


async def delete_sessions_ended_before(conn: Connection, before: datetime, limit: int = 1000) -> int:
    """Forget up to ``limit`` sessions (and their searches) that expired before ``before``."""
    status = await conn.execute(
        "DELETE FROM console_sessions WHERE session_hash IN "
        "(SELECT session_hash FROM console_sessions WHERE expires_at < $1 LIMIT $2)",
        before,
        limit,
    )
    return int(status.split()[-1])


async def insert_search(
    conn: Connection,
    search_id: str,
    session_hash: bytes,
    kind: str,
    subject_system: str,
    subject_sealed: str,
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO console_searches (search_id, session_hash, kind, subject_system, subject_sealed, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        search_id,
        session_hash,
        kind,
        subject_system,
        subject_sealed,
        now,
    )


async def get_search(conn: Connection, search_id: str, session_hash: bytes, kind: str) -> tuple[str, str] | None:
    """(system, sealed value) of a search this session made, or None."""
    row = await conn.fetchrow(
        "SELECT subject_system, subject_sealed FROM console_searches "
        "WHERE search_id = $1 AND session_hash = $2 AND kind = $3",
        search_id,
        session_hash,
        kind,
    )
    return (row["subject_system"], row["subject_sealed"]) if row is not None else None


async def identifier_systems(conn: Connection, log_id: int, limit: int) -> list[str]:
    """The identifier systems seen in the log, in order, at most ``limit``."""
    return [r["system"] for r in await conn.fetch(IDENTIFIER_SYSTEMS_SQL, log_id, limit)]
