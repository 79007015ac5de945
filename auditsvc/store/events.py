"""Reading the ``events`` table: the log's size, one chain hash."""

from __future__ import annotations

import asyncpg


async def committed_size(conn: asyncpg.Connection, log_id: int) -> int:
    """Events committed: appends commit in ``seq`` order (the append lock is
    held to commit), so what a snapshot sees is always a gapless prefix."""
    value = await conn.fetchval("SELECT coalesce(max(seq) + 1, 0) FROM events WHERE log_id = $1", log_id)
    return int(value)


async def chain_hash_at(conn: asyncpg.Connection, log_id: int, seq: int) -> bytes | None:
    """The chain hash stored with event ``seq``, or None when there is no such event."""
    value = await conn.fetchval("SELECT chain_hash FROM events WHERE log_id = $1 AND seq = $2", log_id, seq)
    return None if value is None else bytes(value)
