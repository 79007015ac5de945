"""Queries behind verification runs (migration 0012): insert-only rows for a
run's start, its progress heartbeats and its result, and the advisory lock
that lets one run at a time per log across every process.

Nothing here decides anything (domain/verification_runs.py does).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .locks import VERIFY_LOCK_CLASS
from .session import Connection


@dataclass(frozen=True)
class StoredRun:
    """A run as stored: its start, its latest heartbeat and its result, if any."""

    run_id: uuid.UUID
    started_at: datetime
    requested_by: str
    requested_role: str
    origin: str
    total_rows: int
    progress_at: datetime | None
    checked_rows: int
    progress_total: int
    finished_at: datetime | None
    status: str | None
    tree_size: int | None
    result_checked_rows: int | None
    first_bad_seq: int | None
    damage_kind: str | None
    detail: str | None
    seconds: float | None


# One run with its latest heartbeat and its result: index lookups per run shown (lateral,
# so that no generic plan hashes the whole results table).
_RUN = """
SELECT r.run_id, r.started_at, r.requested_by, r.requested_role, r.origin, r.total_rows,
       p.at AS progress_at, coalesce(p.checked_rows, 0) AS checked_rows,
       coalesce(p.total_rows, r.total_rows) AS progress_total,
       x.finished_at, x.status, x.tree_size, x.checked_rows AS result_checked_rows,
       x.first_bad_seq, x.damage_kind, x.detail, x.seconds
FROM {source} r
LEFT JOIN LATERAL (
    SELECT at, checked_rows, total_rows FROM verification_progress
    WHERE run_id = r.run_id ORDER BY at DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT finished_at, status, tree_size, checked_rows, first_bad_seq, damage_kind, detail, seconds
    FROM verification_results WHERE run_id = r.run_id LIMIT 1
) x ON true
"""

LATEST_RUNS_SQL = (
    _RUN.format(
        source="(SELECT * FROM verification_runs WHERE log_id = $1 ORDER BY started_at DESC, run_id DESC LIMIT $2)"
    )
    + " ORDER BY r.started_at DESC, r.run_id DESC"
)
RUN_SQL = _RUN.format(source="(SELECT * FROM verification_runs WHERE run_id = $1)")


def _run(row: asyncpg.Record) -> StoredRun:
    return StoredRun(**dict(row))


async def latest_runs(conn: Connection, log_id: int, limit: int) -> list[StoredRun]:
    """The ``limit`` most recent runs of ``log_id``, newest first."""
    return [_run(r) for r in await conn.fetch(LATEST_RUNS_SQL, log_id, limit)]


async def get_run(conn: Connection, run_id: uuid.UUID) -> StoredRun | None:
    row = await conn.fetchrow(RUN_SQL, run_id)
    return None if row is None else _run(row)


async def insert_run(
    conn: Connection, run_id: uuid.UUID, log_id: int, requested_by: str, requested_role: str, origin: str, total: int
) -> None:
    await conn.execute(
        "INSERT INTO verification_runs (run_id, log_id, requested_by, requested_role, origin, total_rows) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        run_id,
        log_id,
        requested_by,
        requested_role,
        origin,
        total,
    )


async def insert_progress(conn: Connection, run_id: uuid.UUID, checked: int, total: int) -> None:
    await conn.execute(
        "INSERT INTO verification_progress (run_id, checked_rows, total_rows) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        run_id,
        checked,
        total,
    )


async def insert_result(
    conn: Connection,
    run_id: uuid.UUID,
    status: str,
    *,
    tree_size: int | None = None,
    checked_rows: int | None = None,
    first_bad_seq: int | None = None,
    damage_kind: str | None = None,
    detail: str | None = None,
    seconds: float | None = None,
) -> bool:
    """Record how ``run_id`` ended; False when it already has a result."""
    status_tag = await conn.execute(
        "INSERT INTO verification_results (run_id, status, tree_size, checked_rows, first_bad_seq, damage_kind, "
        "detail, seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id) DO NOTHING",
        run_id,
        status,
        tree_size,
        checked_rows,
        first_bad_seq,
        damage_kind,
        detail,
        seconds,
    )
    return bool(status_tag != "INSERT 0 0")


async def unfinished_runs(conn: Connection, log_id: int, limit: int) -> list[uuid.UUID]:
    """Runs among the ``limit`` most recent of ``log_id`` with no result yet."""
    return [r.run_id for r in await latest_runs(conn, log_id, limit) if r.status is None]


async def try_run_lock(conn: Connection, log_id: int) -> bool:
    """Take the session-level verification lock of ``log_id`` on ``conn``
    (held until it is released or ``conn`` closes, however its process ends)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", VERIFY_LOCK_CLASS, log_id))


async def release_run_lock(conn: Connection, log_id: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, $2)", VERIFY_LOCK_CLASS, log_id)


async def run_lock_free(conn: Connection, log_id: int) -> bool:
    """Whether no process holds the verification lock of ``log_id`` (taken and
    let go at once, within a transaction of its own)."""
    async with conn.transaction():
        return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", VERIFY_LOCK_CLASS, log_id))
