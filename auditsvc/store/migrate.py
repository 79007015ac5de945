"""Apply alembic migrations programmatically (``auditsvc migrate``)."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ..settings import Settings


def alembic_config(settings: Settings, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.migrations_dir))
    config.attributes["sqlalchemy_url"] = make_url(url).set(drivername="postgresql+asyncpg")
    config.attributes["runtime_role"] = settings.runtime_role
    config.attributes["owner_role"] = settings.owner_role
    return config


def upgrade_head(settings: Settings, url: str) -> None:
    """alembic upgrade head against ``url`` (the owner DSN)."""
    config = alembic_config(settings, url)
    # env.py runs its own event loop; keep it off any running loop.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, "head")
        return
    raise RuntimeError("upgrade_head must not be called from a running event loop")


def head_revision(settings: Settings) -> str | None:
    return ScriptDirectory(str(settings.migrations_dir)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
