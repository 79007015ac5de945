"""``auditsvc checkpoint``: sign a checkpoint now (optionally with a new key)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..domain.checkpoints import CheckpointRefused
from ..keys import ensure_signing_key, rotate_signing_key
from ._common import EXIT_TAMPERED, console, database, err_console, fail, run, settings
from ._log import open_log, sign_checkpoint_now


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
        async with open_log(url, s) as (engine, log_id):
            if log_id is None:
                return None
            return (await sign_checkpoint_now(engine, log_id, s)).note

    try:
        note = run(_sign())
    except CheckpointRefused as exc:
        fail(str(exc), EXIT_TAMPERED)
    if note is None:
        fail(f"no log named {s.log_name!r} in this database (has the service ever started?)")
    console.print(note, end="", highlight=False, markup=False)
