"""The ``logs`` table: one row per log a database holds, named by its origin."""

from __future__ import annotations

from .locks import APPEND_LOCK_CLASS, xact_lock
from .session import Connection


async def log_id_for(conn: Connection, log_name: str) -> int | None:
    """The id of the log named ``log_name``, or None when it was never registered."""
    value = await conn.fetchval("SELECT log_id FROM logs WHERE name = $1", log_name)
    return None if value is None else int(value)


async def ensure_log(conn: Connection, name: str, format_version: int) -> int:
    """The log id for ``name``, registering the log on first use."""
    async with conn.transaction():
        await xact_lock(conn, APPEND_LOCK_CLASS, 0)
        log_id = await log_id_for(conn, name)
        if log_id is None:
            log_id = await conn.fetchval(
                "INSERT INTO logs (log_id, name, format_version) "
                "SELECT coalesce(max(log_id), 0) + 1, $1, $2 FROM logs RETURNING log_id",
                name,
                format_version,
            )
    return int(log_id)
