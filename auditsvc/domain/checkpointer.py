"""The background task each worker runs: sign a checkpoint when one is due
(every N events or T seconds), and publish the latest to every sink that
has not taken it yet.

Workers coordinate through PostgreSQL advisory locks, so however many run,
one signs a given checkpoint; the others skip the round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from ..keys import CheckpointSigner
from ..store import tree as store
from ..store.events import committed_size
from ..store.locks import PUBLISH_LOCK_CLASS, try_xact_lock
from ..store.session import Connection, driver_connection
from ..telemetry import active_telemetry
from ..telemetry import metrics as telemetry_metrics
from ..telemetry.tracing import background_work
from .checkpoints import CheckpointRefused, SignedCheckpoint, checkpoint_due, make_checkpoint, published_note
from .sinks import CheckpointSink, DirectorySink, WebhookSink, WitnessSink, publish_all

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger("auditsvc.checkpoints")


@dataclass(frozen=True, slots=True)
class CheckpointConfig:
    """When the log is checkpointed and where the checkpoints go."""

    origin: str  # the log's name, the checkpoint's first line
    every_events: int
    interval_seconds: float
    directory: Path | None = None
    webhook_url: str | None = None
    witnesses: tuple[tuple[str, str], ...] = ()  # (url, vkey)

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointConfig:
        return cls(
            origin=settings.log_name,
            every_events=settings.checkpoint_every_events,
            interval_seconds=settings.checkpoint_interval_seconds,
            directory=settings.checkpoint_dir,
            webhook_url=settings.checkpoint_webhook_url or None,
            witnesses=tuple((w.url, w.vkey) for w in settings.witnesses),
        )


class Checkpointer:
    def __init__(
        self,
        engine: AsyncEngine,
        log_id: int,
        config: CheckpointConfig,
        signer: CheckpointSigner,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.log_id = log_id
        self.origin = config.origin
        self.every = config.every_events
        self.interval = config.interval_seconds
        self.signer = signer
        self._http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self.sinks: list[CheckpointSink] = []
        if config.directory is not None:
            self.sinks.append(DirectorySink(config.directory))
        if config.webhook_url:
            self.sinks.append(WebhookSink(config.webhook_url, self._http))
        for url, vkey in config.witnesses:
            self.sinks.append(WitnessSink(url, vkey, self._http))
        self._published: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.refused: str | None = None
        self._observed = 0.0  # monotonic time the gauges were last fed
        self.clock = clock  # Unix seconds, against which a checkpoint's age is due (tests move it)
        self.poll = max(0.05, min(1.0, self.interval / 2))  # seconds between rounds, read each round
        self.rounds = 0  # background rounds run, done or failed (tests wait on it)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="auditsvc-checkpointer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            telemetry_metrics.forget_log()
        await self._http.aclose()

    async def checkpoint_now(self) -> SignedCheckpoint:
        """Sign now (waiting for a concurrent signer) and publish."""
        async with driver_connection(self.engine) as conn:
            cp = await make_checkpoint(conn, self.log_id, self.origin, self.signer, wait=True)
            assert cp is not None
            await self._observe(conn)
        await self.publish_latest()
        return cp

    async def round(self) -> None:
        """One round: sign if due, then publish what sinks lack."""
        async with driver_connection(self.engine) as conn:
            if await checkpoint_due(conn, self.log_id, self.every, self.interval, self.clock()):
                try:
                    await make_checkpoint(conn, self.log_id, self.origin, self.signer, wait=False)
                    self.refused = None
                except CheckpointRefused as exc:
                    if self.refused != str(exc):
                        log.critical("%s", exc)  # once per condition; no PHI in it
                    self.refused = str(exc)
            if time.monotonic() - self._observed >= 5.0:
                await self._observe(conn)
        await self.publish_latest()

    async def _observe(self, conn: Connection) -> None:
        """Feed the tree-size and checkpoint gauges, when metrics are on."""
        if not active_telemetry().metrics:
            return
        self._observed = time.monotonic()
        size = await committed_size(conn, self.log_id)
        latest = await store.latest_checkpoint(conn, self.log_id)
        telemetry_metrics.observe_checkpoint(
            size,
            latest.tree_size if latest else None,
            latest.created_at.timestamp() if latest else None,
            self.failures,
        )

    async def publish_latest(self) -> None:
        if not self.sinks:
            return
        async with driver_connection(self.engine) as conn, conn.transaction():
            if not await try_xact_lock(conn, PUBLISH_LOCK_CLASS, self.log_id):
                return
            latest = await store.latest_checkpoint(conn, self.log_id)
            if latest is None:
                return
            pending = [s for s in self.sinks if self._published.get(s.name) != latest.tree_size]
            # Witnesses first, so that the directory and webhook get the cosigned note.
            witnesses: list[CheckpointSink] = [s for s in pending if isinstance(s, WitnessSink)]
            for group in (witnesses, [s for s in pending if not isinstance(s, WitnessSink)]):
                if not group:
                    continue
                note = await published_note(conn, self.log_id, latest.tree_size)
                assert note is not None
                failed = await publish_all(group, conn, self.log_id, latest.tree_size, note)
                self.failures += len(failed)
                for sink in group:
                    if sink.name not in failed:
                        self._published[sink.name] = latest.tree_size

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                with background_work():  # polling: no database spans
                    await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: try again next round
                self.failures += 1
                log.warning("checkpoint round failed: %s", type(exc).__name__)
            self.rounds += 1
