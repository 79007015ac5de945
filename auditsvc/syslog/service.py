"""The syslog listeners as a service: ingest plus listeners on one audit log.

``auditsvc serve`` runs them in a process of their own (``auditsvc syslog
listen``, started beside uvicorn's workers) so that however many API worker
processes there are, each port is bound once; that process appends through
its own group-commit appender, and the append lock in PostgreSQL keeps its
events and the API's in one chain (tests/test_syslog_listeners.py).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..runtime import AuditLog, open_audit_log
from ..settings import Settings
from .convert import Mapper
from .ingest import IngestConfig, SyslogIngest
from .listeners import ListenerConfig, SyslogListeners


@asynccontextmanager
async def syslog_listeners(
    audit: AuditLog, config: ListenerConfig, ingest_config: IngestConfig, *, mapper: Mapper | None = None
) -> AsyncIterator[SyslogListeners]:
    """Listeners serving for the block; on the way out they stop taking
    messages and what was queued is appended first."""
    ingest = SyslogIngest(audit, ingest_config, mapper=mapper)
    ingest.start()
    listeners = SyslogListeners(config, ingest)
    try:
        await listeners.start()
        yield listeners
    finally:
        await listeners.stop()
        await ingest.stop()


async def serve_syslog(settings: Settings, url: str, started: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with (
        open_audit_log(settings, url, background=False) as audit,
        syslog_listeners(audit, ListenerConfig.from_settings(settings), IngestConfig.from_settings(settings)) as ls,
    ):
        print(
            "auditsvc syslog listening on "
            + ", ".join(f"{transport} {settings.syslog_host}:{port}" for transport, port in ls.ports.items()),
            flush=True,
        )
        if started is not None:
            started.set()
        await stop.wait()
