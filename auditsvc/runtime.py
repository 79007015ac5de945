"""The running service's shared state: engine, keys, log identity, appender."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from auditsvc_sdk import FORMAT_VERSION, genesis_hash
from sqlalchemy.ext.asyncio import AsyncEngine

from .domain.appender import Appender
from .domain.backfill import Backfiller
from .domain.checkpointer import CheckpointConfig, Checkpointer
from .keys import CheckpointSigner, ServerKeys, ensure_signing_key, load_keys
from .settings import Settings
from .store.engine import PoolConfig, create_engine, runtime_url
from .store.logs import ensure_log
from .store.partitions import ensure_room
from .store.session import driver_connection


@dataclass
class AuditLog:
    settings: Settings
    engine: AsyncEngine
    keys: ServerKeys
    log_id: int
    log_name: str
    genesis: bytes
    appender: Appender
    checkpointer: Checkpointer


@asynccontextmanager
async def open_audit_log(
    settings: Settings, url: str | None = None, *, background: bool = True
) -> AsyncIterator[AuditLog]:
    """Connect as the runtime role, register the log, start the appender and
    (``background``) the checkpointer."""
    engine = create_engine(url or runtime_url(settings), PoolConfig.from_settings(settings))
    try:
        async with driver_connection(engine) as conn:
            log_id = await ensure_log(conn, settings.log_name, FORMAT_VERSION)
            # events is partitioned by seq (migration 0010): room ahead before the first append
            await ensure_room(conn, log_id, settings.partition_rows)
        genesis = genesis_hash(settings.log_name)
        appender = Appender(
            engine, log_id, genesis, settings.group_commit_max_events, partition_rows=settings.partition_rows
        )
        appender.start()
        ensure_signing_key(settings)
        checkpointer = Checkpointer(
            engine, log_id, CheckpointConfig.from_settings(settings), CheckpointSigner.from_settings(settings)
        )
        keys = load_keys(settings)
        backfiller = Backfiller(engine, log_id, keys)  # the read model for events stored before it (migration 0006)
        if background:
            checkpointer.start()
            backfiller.start()
        try:
            yield AuditLog(settings, engine, keys, log_id, settings.log_name, genesis, appender, checkpointer)
        finally:
            await backfiller.stop()
            await checkpointer.stop()
            await appender.stop()
    finally:
        await engine.dispose()
