"""Alembic environment: runs migrations over asyncpg with the owner DSN.

``auditsvc migrate`` (auditsvc/store/migrate.py) builds the configuration in
code, passing the DSN and the runtime role name as config attributes.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations(runtime_role=config.attributes.get("runtime_role", "auditsvc_app"))


async def _run_async() -> None:
    engine = create_async_engine(config.attributes["sqlalchemy_url"])
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `auditsvc migrate`")
asyncio.run(_run_async())
