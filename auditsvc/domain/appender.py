"""Group commit: concurrent requests in one process share one append transaction.

Each request hands its validated batch to the process's ``Appender`` and
waits. A single committer task takes everything queued (up to a bound), runs
one append transaction for all of it, and answers each request only after
that transaction has committed, so a 2xx always means "durably stored".
While one transaction runs, the next group gathers, so under load the lock
is taken once per many batches without any added delay when idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import SpanContext
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.append import SeenCache, append_group
from ..store.partitions import DEFAULT_PARTITION_ROWS, Partitions
from ..store.session import CONNECTION_ERRORS, driver_connection
from ..telemetry import append as telemetry
from .append_types import EventResult, Head, PendingBatch, PreparedEvent
from .errors import AppendFailed, Unavailable

log = logging.getLogger(__name__)

# Failures that mean "the database is not there right now": the request
# gets 503 and the client retries; nothing was committed.
DATABASE_DOWN = CONNECTION_ERRORS


@dataclass
class _Request:
    batch: PendingBatch
    future: asyncio.Future[tuple[list[EventResult], Head]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    origin: SpanContext = field(default_factory=telemetry.current_span_context)  # the request's span


class Appender:
    def __init__(
        self,
        engine: AsyncEngine,
        log_id: int,
        genesis: bytes,
        max_group_events: int = 5000,
        *,
        partition_rows: int = DEFAULT_PARTITION_ROWS,
    ) -> None:
        self._engine = engine
        self._log_id = log_id
        self._genesis = genesis
        self._max_group_events = max_group_events
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._seen = SeenCache()
        self._partitions = Partitions(partition_rows)  # kept across groups: its top is cached

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="auditsvc-appender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if not request.future.done():
                request.future.set_exception(Unavailable("the service is shutting down; nothing was stored"))

    async def append_batch(self, events: Sequence[PreparedEvent]) -> tuple[list[EventResult], Head]:
        """Append one request's events; returns after they are committed."""
        if self._task is None:
            raise RuntimeError("Appender.start() was not called")
        with telemetry.batch(len(events)):
            request = _Request(PendingBatch(events))
            await self._queue.put(request)
            return await request.future

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            size = len(group[0].batch.events)
            while size < self._max_group_events and not self._queue.empty():
                request = self._queue.get_nowait()
                group.append(request)
                size += len(request.batch.events)
            await self._commit(group)

    async def _commit(self, group: list[_Request]) -> None:
        """One group-commit transaction, traced and measured (no event content)."""
        sizes = [len(r.batch.events) for r in group]
        with telemetry.group_commit([r.origin for r in group], sizes) as observe:
            observe(await self._append(group))

    async def _append(self, group: list[_Request]) -> tuple[list[list[EventResult]], Head] | str:
        """Append and answer every request; the results, or the failure's class."""
        try:
            async with driver_connection(self._engine) as conn:
                results, head = await append_group(
                    conn, self._log_id, self._genesis, [r.batch for r in group], self._seen, self._partitions
                )
        except DATABASE_DOWN as exc:
            log.warning("append failed, database unavailable: %s", type(exc).__name__)
            error: Exception = Unavailable("the database is unavailable; nothing was stored, retry later")
            for request in group:
                if not request.future.done():
                    request.future.set_exception(error)
            return "unavailable"
        except Exception as exc:
            # Never log the exception text: PostgreSQL's DETAIL can quote a row.
            log.error(
                "append transaction failed (%s, sqlstate %s); nothing was stored",
                type(exc).__name__,
                getattr(exc, "sqlstate", None),
            )
            failure = AppendFailed("the append transaction failed; nothing was stored")
            for request in group:
                if not request.future.done():
                    request.future.set_exception(failure)
            return "failed"
        for request, batch_results in zip(group, results, strict=True):
            if not request.future.done():
                request.future.set_result((batch_results, head))
        return results, head
