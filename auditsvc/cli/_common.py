"""What every command shares: settings, the database, consoles, exit codes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..settings import Settings, get_settings
from ..store.embedded import EmbeddedServerError
from ..store.engine import owner_url
from ..store.migrate import upgrade_head
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
        return url
    except EmbeddedServerError as exc:
        sys.stderr.write("".join(f"{line}\n" for line in exc.lines))  # as logged: no wrapping, no markup
        fail(f"cannot start the database: {exc.args[0]}")
    except Exception as exc:
        fail(f"cannot reach the database: {type(exc).__name__}: {exc}")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def configure_logging(log_format: LogFormat | None = None) -> dict[str, Any]:
    """Log lines on stderr, text or JSON (AUDITSVC_LOG_FORMAT) at
    AUDITSVC_LOG_LEVEL; returns the configuration, for uvicorn's workers."""
    return telemetry_logs.configure_logging(log_format)
