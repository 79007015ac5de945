"""The ``logs`` table: one row per log a database holds, named by its origin."""

from __future__ import annotations

import asyncpg


async def log_id_for(conn: asyncpg.Connection, log_name: str) -> int | None:
    """The id of the log named ``log_name``, or None when it was never registered."""
    value = await conn.fetchval("SELECT log_id FROM logs WHERE name = $1", log_name)
    return None if value is None else int(value)
