"""From received syslog frames to the chain, in small batches, with backpressure.

Listeners hand each frame to ``SyslogIngest``: TCP and TLS connections
``await submit()``, which waits while the bounded queue is full, so a
connection is not read further until there is room (its sender's TCP window
closes; nothing is dropped); UDP ``offer()``s, and a datagram that finds the
queue full is dropped and counted: UDP has no way to push back.

One task takes up to ``batch_messages`` frames at a time, converts each
(auditsvc/syslog/convert.py) and appends all their events in one batch
through the service's append path (the process's group-commit ``Appender``,
so the events join the one chain under its lock, whichever process else
appends). A frame that cannot become events is quarantined instead
(domain/quarantine.py). While the database is unavailable the batch is
retried (the queue fills and the TCP senders wait); if an append fails for
another reason, the batch's messages are appended one by one and the one
that fails is quarantined (``append_failed``).

Syslog has no acknowledgement: what is in the queue when the process dies
is lost to the sender as well (RFC 5425 §4.3). The queue is bounded to keep
that small; stop() drains it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..domain.append_types import PreparedEvent
from ..domain.errors import AppendFailed, Unavailable
from ..domain.ingest import prepare
from ..domain.quarantine import quarantine_frame
from ..runtime import AuditLog
from ..settings import Settings
from ..store.session import CONNECTION_ERRORS
from ..telemetry import syslog as metrics
from .convert import Mapper, Rejected, convert_frame
from .identity import SenderIdentity

log = logging.getLogger(__name__)

ListenerTransport = Literal["tls", "tcp", "udp"]


@dataclass(frozen=True, slots=True)
class Received:
    """One frame as a listener read it, with who sent it."""

    frame: bytes
    transport: ListenerTransport
    peer: str | None
    sender: SenderIdentity


@dataclass(frozen=True, slots=True)
class IngestConfig:
    queue_messages: int = 2000
    batch_messages: int = 200
    retry_seconds: float = 0.5  # between attempts while the database is unavailable
    appends_in_flight: int = 4  # batches converted and waiting for their commit

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestConfig:
        return cls(queue_messages=settings.syslog_queue_messages, batch_messages=settings.syslog_batch_messages)


@dataclass(frozen=True, slots=True)
class _Ready:
    received: Received
    events: list[PreparedEvent]


class SyslogIngest:
    def __init__(self, audit: AuditLog, config: IngestConfig, *, mapper: Mapper | None = None) -> None:
        self._audit = audit
        self._config = config
        self._mapper_args: tuple[Mapper, ...] = () if mapper is None else (mapper,)
        self._queue: asyncio.Queue[Received] = asyncio.Queue(config.queue_messages)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="auditsvc-syslog-ingest")

    async def submit(self, received: Received) -> None:
        """Queue a frame, waiting while the queue is full (TCP, TLS)."""
        metrics.received(received.transport)
        await self._queue.put(received)

    def offer(self, received: Received) -> bool:
        """Queue a frame if there is room (UDP); False: dropped and counted."""
        metrics.received(received.transport)
        try:
            self._queue.put_nowait(received)
        except asyncio.QueueFull:
            metrics.dropped(received.transport, "queue_full")
            return False
        return True

    async def drained(self) -> None:
        """Every frame queued so far is appended or quarantined."""
        await self._queue.join()

    async def stop(self, grace: float = 10.0) -> None:
        """Finish what is queued (up to ``grace`` seconds), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if not self._queue.empty():
            log.warning("syslog ingest stopped with %d messages not appended", self._queue.qsize())

    async def _run(self) -> None:
        # Converting is CPU, appending mostly waiting for the commit: the next
        # batch is converted while earlier ones are appended (at most
        # ``appends_in_flight``; the appender commits them in order, grouped).
        in_flight = asyncio.Semaphore(self._config.appends_in_flight)
        appending: set[asyncio.Task[None]] = set()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._config.batch_messages and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await in_flight.acquire()
            try:
                ready = await self._convert(batch)
            except Exception as exc:  # never let one batch stop the listener
                self._failed(batch, exc, in_flight)
                continue
            task = asyncio.create_task(self._finish(batch, ready, in_flight))
            appending.add(task)
            task.add_done_callback(appending.discard)

    def _failed(self, batch: Sequence[Received], exc: Exception, in_flight: asyncio.Semaphore) -> None:
        log.error("syslog batch of %d messages failed (%s)", len(batch), type(exc).__name__)
        for received in batch:
            metrics.dropped(received.transport, "ingest_fault")
            self._queue.task_done()
        in_flight.release()

    async def _finish(self, batch: Sequence[Received], ready: Sequence[_Ready], in_flight: asyncio.Semaphore) -> None:
        try:
            await self._append_or_quarantine(ready)
        except Exception as exc:
            self._failed(batch, exc, in_flight)
            return
        for _ in batch:
            self._queue.task_done()
        in_flight.release()

    async def _convert(self, batch: Sequence[Received]) -> list[_Ready]:
        """The batch's events; what cannot become events is quarantined here.
        The mapping is CPU work: it runs in a thread, so that this loop keeps
        serving connections and the append transactions under way (which hold
        the chain's lock) never wait for it."""
        ready, rejected = await asyncio.to_thread(self._convert_batch, batch)
        for received, exc in rejected:
            await self._quarantine(received, exc)
        return ready

    def _convert_batch(self, batch: Sequence[Received]) -> tuple[list[_Ready], list[tuple[Received, Rejected]]]:
        ready: list[_Ready] = []
        rejected: list[tuple[Received, Rejected]] = []
        for received in batch:
            try:
                converted = convert_frame(
                    received.frame, received.transport, received.peer, received.sender, *self._mapper_args
                )
            except Rejected as exc:
                rejected.append((received, exc))
                continue
            ready.append(_Ready(received, prepare(converted.events, self._audit.keys, received.sender.emitter)))
        return ready, rejected

    async def _append_or_quarantine(self, ready: Sequence[_Ready]) -> None:
        if not ready:
            return
        try:
            await self._append(ready)
        except AppendFailed:
            for one in ready:  # find the message the transaction failed on
                try:
                    await self._append([one])
                except AppendFailed:
                    await self._quarantine(one.received, Rejected("append_failed", "the append transaction failed"))

    async def _append(self, ready: Sequence[_Ready]) -> None:
        events = [event for one in ready for event in one.events]
        while True:
            try:
                await self._audit.appender.append_batch(events)
                break
            except Unavailable:
                await asyncio.sleep(self._config.retry_seconds)  # backpressure: the queue fills meanwhile
        by_transport: dict[str, tuple[int, int]] = {}
        for one in ready:
            messages, count = by_transport.get(one.received.transport, (0, 0))
            by_transport[one.received.transport] = (messages + 1, count + len(one.events))
        for transport, (messages, count) in by_transport.items():
            metrics.appended(transport, messages, count)

    async def _quarantine(self, received: Received, rejected: Rejected) -> None:
        metrics.quarantined(received.transport, rejected.reason)
        while True:
            try:
                await quarantine_frame(
                    self._audit,
                    received.frame,
                    rejected,
                    transport=received.transport,
                    peer=received.peer,
                    sender=received.sender,
                )
                return
            except CONNECTION_ERRORS:
                await asyncio.sleep(self._config.retry_seconds)
            except Exception as exc:  # never the exception text: it may quote the row
                log.error("a syslog message could not be quarantined (%s); it is lost", type(exc).__name__)
                metrics.dropped(received.transport, "quarantine_failed")
                return
