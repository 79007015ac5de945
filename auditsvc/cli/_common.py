"""What every command shares: settings, the database, the log, who runs it, consoles, exit codes."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..domain.backfill import backfill_all
from ..domain.errors import DomainError
from ..domain.tokens import Caller, Role
from ..keys import load_keys
from ..runtime import AuditLog, open_audit_log
from ..settings import Settings, get_settings
from ..store.embedded import EmbeddedServerError
from ..store.engine import owner_url
from ..store.migrate import upgrade_head
from ..store.session import connect
from ..telemetry import logs as telemetry_logs
from ..telemetry.logs import LogFormat

T = TypeVar("T")

# Reports are wide; when piped, do not squeeze them into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_ERROR = 2


def settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:
        fail(f"configuration error: {exc}")


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def database(s: Settings) -> str:
    """The owner DSN; in embedded mode the server is started and migrated."""
    try:
        url = owner_url(s)
        if s.embedded:
            upgrade_head(s, url)
    except EmbeddedServerError as exc:
        sys.stderr.write("".join(f"{line}\n" for line in exc.lines))  # as logged: no wrapping, no markup
        fail(f"cannot start the database: {exc.args[0]}")
    except Exception as exc:
        fail(f"cannot reach the database: {type(exc).__name__}: {exc}")
    return url


def build_read_model(s: Settings, url: str) -> None:
    """After the migrations: the reports' read model for events stored before
    migration 0006, in resumable batches (domain/backfill.py); at once when
    there are none."""
    try:
        keys = load_keys(s, sealing=False)  # format-1 records' lookup keys
    except Exception:
        keys = None

    def progress(log_id: int, done: int, head: int) -> None:
        err_console.print(f"building the report index of log {log_id}: {done:,} of {head:,} events", highlight=False)

    async def _run() -> bool:
        conn = await connect(url)
        try:
            return await backfill_all(conn, keys, progress)
        finally:
            await conn.close()

    try:
        complete = asyncio.run(_run())
    except Exception as exc:
        fail(f"building the report index failed (run again to resume): {type(exc).__name__}")
    if not complete:
        err_console.print("another process is building the report index; reports answer 503 until it is done")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def cli_caller(role: Role = Role.PRIVACY_OFFICER) -> Caller:
    """The operating-system user (``cli:<user>``) in ``role``: the reader the chain records."""
    return Caller(token_id=f"cli:{getpass.getuser()}", role=role, systems=(), name=None)


def with_audit_log(work: Callable[[AuditLog], Awaitable[T]]) -> T:
    """``work`` on the log (the database started and migrated first); a
    refused request ends the command with its message."""
    s = settings()
    url = database(s)

    async def go() -> T:
        async with open_audit_log(s, url, background=False) as audit:
            return await work(audit)

    try:
        return run(go())
    except DomainError as exc:
        fail(exc.message)


def configure_logging(log_format: LogFormat | None = None) -> dict[str, Any]:
    """Log lines on stderr, text or JSON (AUDITSVC_LOG_FORMAT) at
    AUDITSVC_LOG_LEVEL; returns the configuration, for uvicorn's workers."""
    return telemetry_logs.configure_logging(log_format)
