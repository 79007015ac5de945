"""Alembic environment: runs migrations over asyncpg with the owner DSN.

``auditsvc migrate`` (auditsvc/store/migrate.py) builds the configuration in
code, passing the DSN and the runtime and owner role names as config
attributes.

Once a database's schema belongs to the owner role (revision 0005 hands it
over), every later migration runs under ``SET ROLE`` to that role, so the
objects it creates are owned by it and not by the login that migrates. A
migration that needs more than the owner may do (create a role, say) must
``RESET ROLE`` for that statement itself.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config


def _act_as_owner(connection: Connection, owner_role: str) -> None:
    """``SET ROLE`` to the owner role when it owns this schema and is not the login itself.

    Roles are global to a PostgreSQL server: the role may exist because
    another database was migrated, so what decides is who owns this
    database's version table, not whether the role exists.
    """
    row = connection.execute(
        text(
            "SELECT pg_get_userbyid(relowner) AS owner, current_user AS me FROM pg_class "
            "WHERE oid = to_regclass('alembic_version')"
        )
    ).first()
    if row is not None and row.owner == owner_role and row.me != owner_role:
        connection.execute(text(f"SET ROLE {owner_role}"))


def _run(connection: Connection) -> None:
    runtime_role = config.attributes.get("runtime_role", "auditsvc_app")
    owner_role = config.attributes.get("owner_role", "auditsvc_owner")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", owner_role):
        raise ValueError("owner role name must be a plain lowercase identifier")
    # A session-level SET ROLE outlives the transaction it commits with.
    _act_as_owner(connection, owner_role)
    connection.commit()

    def after_each_migration(*, ctx: Any, **kw: Any) -> None:
        _act_as_owner(ctx.connection, owner_role)

    context.configure(
        connection=connection,
        target_metadata=None,
        transaction_per_migration=True,
        on_version_apply=after_each_migration,
    )
    with context.begin_transaction():
        context.run_migrations(runtime_role=runtime_role, owner_role=owner_role)


async def _run_async() -> None:
    engine = create_async_engine(config.attributes["sqlalchemy_url"])
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `auditsvc migrate`")
asyncio.run(_run_async())
