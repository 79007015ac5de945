"""What every command shares: settings, the database, consoles, exit codes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from ..settings import Settings, get_settings
from ..store.engine import owner_url
from ..store.migrate import upgrade_head

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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def database(s: Settings) -> str:
    """The owner DSN; in embedded mode the server is started and migrated."""
    try:
        url = owner_url(s)
        if s.embedded:
            upgrade_head(s, url)
        return url
    except Exception as exc:
        fail(f"cannot reach the database: {type(exc).__name__}: {exc}")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def configure_logging() -> None:
    level = os.environ.get("AUDITSVC_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
