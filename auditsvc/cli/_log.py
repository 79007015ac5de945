"""What the commands that work on the log itself share: an engine on the
owner DSN with the log's id, and signing one checkpoint now."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from ..domain.checkpointer import CheckpointConfig, Checkpointer
from ..domain.checkpoints import SignedCheckpoint
from ..keys import CheckpointSigner
from ..settings import Settings
from ..store.engine import PoolConfig, create_engine
from ..store.logs import log_id_for
from ..store.session import driver_connection


@asynccontextmanager
async def open_log(url: str, s: Settings) -> AsyncIterator[tuple[AsyncEngine, int | None]]:
    """The engine and the log's id (None when the service never created the log)."""
    engine = create_engine(url, PoolConfig.from_settings(s))
    try:
        async with driver_connection(engine) as conn:
            log_id = await log_id_for(conn, s.log_name)
        yield engine, log_id
    finally:
        await engine.dispose()


async def sign_checkpoint_now(engine: AsyncEngine, log_id: int, s: Settings) -> SignedCheckpoint:
    """Sign (or reuse, if the log has not grown) a checkpoint and publish it to the sinks."""
    checkpointer = Checkpointer(engine, log_id, CheckpointConfig.from_settings(s), CheckpointSigner.from_settings(s))
    try:
        return await checkpointer.checkpoint_now()
    finally:
        await checkpointer.stop()
