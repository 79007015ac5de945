"""Borrowing connections from the SQLAlchemy pool.

The append and verify paths use the asyncpg connection underneath the pool
(COPY, server-side cursors) without going through SQLAlchemy's DBAPI
emulation; the connection is still pooled, pinged and returned as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, asyncpg.Connection)
        yield driver
