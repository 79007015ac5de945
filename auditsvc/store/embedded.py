"""The embedded PostgreSQL default, from the ``pgserver`` package.

The server lives in ``data_dir/pg`` and listens on a Unix socket only. Every
process that calls :func:`embedded_owner_url` holds a handle; ``pgserver``
stops the server when the last handle closes, so ``auditsvc serve`` keeps it
up and a one-off CLI command attaches to a running server without stopping it.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

DATABASE = "auditsvc"
_servers: dict[Path, Any] = {}
log = logging.getLogger(__name__)


def embedded_owner_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded server and return an owner DSN for
    the ``auditsvc`` database, creating that database on first use."""
    pgdata = (data_dir / "pg").resolve()
    if pgdata not in _servers:
        data_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.resolve()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
        if "1 row" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE};")
            log.info("created embedded database in %s", pgdata)
        _servers[pgdata] = server
    socket_dir = str(pgdata)
    return f"postgresql://postgres@/{DATABASE}?host={quote(socket_dir, safe='/')}"
