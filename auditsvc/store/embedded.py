"""The embedded PostgreSQL default, from the ``pgserver`` package.

The server lives in ``data_dir/pg`` and listens on a Unix socket only. Every
process that calls :func:`embedded_owner_url` holds a handle; ``pgserver``
stops the server when the last handle closes, so ``auditsvc serve`` keeps it
up and a one-off CLI command attaches to a running server without stopping it.

``pgserver`` logs every ``initdb`` and ``pg_ctl`` it runs, with their output,
at INFO: about forty lines before the service's own URL on a first start.
Those lines are held back from the console. When the server does not start
they travel in the :class:`EmbeddedServerError`; when a warning or an error
comes later (the server cannot be stopped at exit), they are shown with it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import quote

DATABASE = "auditsvc"
_servers: dict[Path, Any] = {}
log = logging.getLogger(__name__)


class EmbeddedServerError(RuntimeError):
    """The embedded server did not start, or its database could not be made.
    ``lines`` hold what ``pgserver`` logged on the way (its ``initdb`` and
    ``pg_ctl`` runs and, when the server failed, the server's own log)."""

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines

    def __str__(self) -> str:
        message = str(self.args[0])
        return "\n".join([message, "what it logged:", *self.lines]) if self.lines else message


class HeldBackLog(logging.Handler):
    """``pgserver``'s records, kept out of the console: the last ``capacity``
    are held. Outside a start (``starting`` false), a warning or an error
    shows them all through this module's logger, which reaches the
    console's handlers; during a start they go into the error instead."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__(logging.DEBUG)
        self.records: deque[logging.LogRecord] = deque(maxlen=capacity)
        self.starting = False
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.levelno >= logging.WARNING and not self.starting:
            self.show()

    def lines(self) -> list[str]:
        return [self.format(record) for record in self.records]

    def show(self) -> None:
        held = list(self.records)
        self.records.clear()
        for record in held:
            log.handle(record)


def hold_back_pgserver_log() -> HeldBackLog:
    """Route the ``pgserver`` logger (INFO and up) to the one held-back buffer."""
    logger = logging.getLogger("pgserver")
    for handler in logger.handlers:
        if isinstance(handler, HeldBackLog):
            return handler
    held = HeldBackLog()
    logger.addHandler(held)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return held


def embedded_owner_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded server and return an owner DSN for
    the ``auditsvc`` database, creating that database on first use."""
    pgdata = (data_dir / "pg").resolve()
    if pgdata not in _servers:
        held = hold_back_pgserver_log()
        held.records.clear()
        held.starting = True
        try:
            _servers[pgdata] = _start(data_dir, pgdata)
        except Exception as exc:
            raise EmbeddedServerError(
                f"the embedded PostgreSQL in {pgdata} did not start: {_why(exc)}", held.lines()
            ) from exc
        finally:
            held.starting = False
            held.records.clear()
    socket_dir = str(pgdata)
    return f"postgresql://postgres@/{DATABASE}?host={quote(socket_dir, safe='/')}"


def _why(exc: Exception) -> str:
    if isinstance(exc, subprocess.CalledProcessError) and isinstance(exc.cmd, list | tuple) and exc.cmd:
        return f"{Path(str(exc.cmd[0])).name} exited with status {exc.returncode}"
    return f"{type(exc).__name__}: {exc}"


def _start(data_dir: Path, pgdata: Path) -> Any:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.resolve()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
        log.debug("created embedded database in %s", pgdata)
    return server
