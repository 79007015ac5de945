"""DSNs and SQLAlchemy async engines for the owner and the runtime role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..settings import Settings
from .embedded import embedded_owner_url


def owner_url(settings: Settings) -> str:
    """The owner DSN in use: configured, or the embedded server's."""
    if settings.database_url is not None:
        return settings.database_url
    return embedded_owner_url(settings.data_dir)


def runtime_url(settings: Settings) -> str:
    """The DSN of the least-privileged runtime role."""
    if settings.runtime_database_url is not None:
        return settings.runtime_database_url
    parts = urlsplit(owner_url(settings))
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{settings.runtime_role}@{host}"))


def asyncpg_dsn(url: str) -> str:
    """A plain ``postgresql://`` DSN as asyncpg takes it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """The connection pool: connections kept (as many again may open under
    load) and the per-statement timeout (``AUDITSVC_DB_*``)."""

    size: int
    statement_timeout_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolConfig:
        return cls(settings.db_pool_size, settings.db_statement_timeout_ms)


def create_engine(url: str, pool: PoolConfig, **kwargs: Any) -> AsyncEngine:
    sa_url = make_url(url).set(drivername="postgresql+asyncpg")
    return create_async_engine(
        sa_url,
        pool_size=pool.size,
        max_overflow=pool.size,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {
                "application_name": "auditsvc",
                "statement_timeout": str(pool.statement_timeout_ms),
            }
        },
        **kwargs,
    )


def redact(url: str) -> str:
    """The DSN with any password masked, for printing."""
    return make_url(url).render_as_string(hide_password=True)
