"""How auditsvc talks to PostgreSQL: one driver for every query, asyncpg.

* **Queries** (append, reads, reports, proofs, checkpoints, tokens, verify)
  run on an asyncpg ``Connection``: in the service and the CLI one borrowed
  from the SQLAlchemy pool (:func:`driver_connection`: pooled, pinged and
  returned as usual, COPY and server-side cursors without SQLAlchemy's DBAPI
  emulation), in verify workers and tools a direct one (:func:`connect`).
* **SQLAlchemy** is only the pool (``engine.py``) and alembic's migrations
  (``migrate.py``); no module writes SQL through ``text()``.

Every statement lives in ``auditsvc/store/``; the other packages name
connections and database failures only through this module's
``Connection``, ``DatabaseError`` and ``CONNECTION_ERRORS``
(tests/test_storage_boundary.py holds that line).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from .engine import asyncpg_dsn

__all__ = ["CONNECTION_ERRORS", "Connection", "DataError", "DatabaseError", "connect", "driver_connection"]

Connection = asyncpg.Connection
"""A connection to the log's database (asyncpg's)."""

DatabaseError = asyncpg.PostgresError
"""Any error PostgreSQL answered with."""

DataError = asyncpg.DataError
"""PostgreSQL could not take or read a value (SQLSTATE class 22: data exception)."""

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncio.TimeoutError,
)
"""Failures that mean "the database is not there right now": nothing was
committed and the caller may retry."""


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Connection]:
    """A connection borrowed from ``engine``'s pool for the block."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, asyncpg.Connection)
        yield driver


async def connect(url: str) -> Connection:
    """A connection of its own to ``url`` (any ``postgresql[+driver]://`` DSN);
    the caller closes it."""
    return await asyncpg.connect(asyncpg_dsn(url))
