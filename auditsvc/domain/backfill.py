"""Building the reports' read model for events stored before it existed.

Migration 0006 records which logs need it; ``auditsvc migrate`` runs it to
the end, and a running service runs it in the background (one process at a
time: the others find the backfill's advisory lock taken and wait). Reports
answer 503 until it completes (domain/reports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..keys import ServerKeys
from ..store import readmodel
from ..store.session import Connection, driver_connection
from .errors import Unavailable
from .verify_range import identifier_lookup_keys

log = logging.getLogger("auditsvc.readmodel")

RETRY_SECONDS = 5.0


def lookup_keys(keys: ServerKeys | None) -> Callable[[dict[str, Any]], list[bytes]]:
    """The patient lookup keys of a stored record (format-1 records need the identifier key)."""
    key = keys.identifier_key if keys is not None else None

    def of(record: dict[str, Any]) -> list[bytes]:
        found = identifier_lookup_keys(record, key)
        if found is None:
            raise RuntimeError("format-1 records need the server's identifier key (AUDITSVC_SECRET_KEY) to backfill")
        return found

    return of


async def backfill_all(
    conn: Connection,
    keys: ServerKeys | None,
    progress: Callable[[int, int, int], None] | None = None,
    batch_rows: int = 20_000,
) -> bool:
    """Backfill every pending log; ``progress(log_id, done, head)``. False if
    another process holds some log's backfill."""
    complete = True
    for log_id in await readmodel.pending_logs(conn):
        report = None if progress is None else (lambda done, head, log_id=log_id: progress(log_id, done, head))
        complete &= await readmodel.backfill(conn, log_id, lookup_keys(keys), batch_rows=batch_rows, progress=report)
    return complete


async def require_read_model(conn: Connection, log_id: int) -> None:
    """Raise ``Unavailable`` (503) while the log's backfill is incomplete."""
    complete, done = await readmodel.backfill_state(conn, log_id)
    if not complete:
        raise Unavailable(
            "reports are unavailable while the report index is built for events stored before this version "
            f"(at seq {done}); retry later, or run `auditsvc migrate` to finish it"
        )


class Backfiller:
    """The running service's background backfill of its own log."""

    def __init__(self, engine: AsyncEngine, log_id: int, keys: ServerKeys) -> None:
        self._engine = engine
        self._log_id = log_id
        self._keys = keys
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="auditsvc-readmodel-backfill")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with driver_connection(self._engine) as conn:
                    if await readmodel.backfill(conn, self._log_id, lookup_keys(self._keys)):
                        return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried; the message may quote a row, so only the class
                log.warning("read model backfill failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(RETRY_SECONDS)
