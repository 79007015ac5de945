"""``auditsvc checkpoint``: sign a checkpoint now (optionally with a new key)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..domain.checkpointer import Checkpointer
from ..domain.checkpoints import CheckpointRefused
from ..domain.verify import log_id_for
from ..keys import ensure_signing_key, rotate_signing_key
from ..store.engine import create_engine
from ..store.session import driver_connection
from ._common import EXIT_TAMPERED, console, database, err_console, fail, run, settings


def checkpoint(
    rotate_key: Annotated[
        bool,
        typer.Option(
            "--rotate-key",
            help="first replace the signing key with a new one (the old file is kept as *.retired-<key id>)",
        ),
    ] = False,
) -> None:
    """Sign a checkpoint of the current tree now, publish it to the configured sinks and print the signed note."""
    s = settings()
    url = database(s)
    if rotate_key:
        path, retired = rotate_signing_key(s)
        err_console.print(f"new signing key in {path}" + (f"; the old one kept as {retired}" if retired else ""))
    else:
        ensure_signing_key(s)

    async def _sign() -> str | None:
        engine = create_engine(url, s)
        try:
            async with driver_connection(engine) as conn:
                log_id = await log_id_for(conn, s.log_name)
            if log_id is None:
                return None
            checkpointer = Checkpointer(engine, log_id, s)
            try:
                signed = await checkpointer.checkpoint_now()
            finally:
                await checkpointer.stop()
            return signed.note
        finally:
            await engine.dispose()

    try:
        note = run(_sign())
    except CheckpointRefused as exc:
        fail(str(exc), EXIT_TAMPERED)
    if note is None:
        fail(f"no log named {s.log_name!r} in this database (has the service ever started?)")
    console.print(note, end="", highlight=False, markup=False)
