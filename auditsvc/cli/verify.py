"""``auditsvc verify``: recompute the whole chain from the database."""

from __future__ import annotations

import json
from typing import Annotated

import asyncpg
import typer
from auditsvc_sdk import genesis_hash
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..domain.verify import VerifyReport, log_id_for, verify_chain
from ..keys import load_keys
from ..store.engine import asyncpg_dsn
from ._common import EXIT_ERROR, EXIT_OK, EXIT_TAMPERED, console, database, err_console, fail, run, settings


def verify(
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Verify the store: exit 0 intact, 1 tampering found, 2 could not run."""
    s = settings()
    url = database(s)

    async def _verify(progress: Progress | None) -> VerifyReport | None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            log_id = await log_id_for(conn, s.log_name)
            if log_id is None:
                return None
            task = progress.add_task("verifying", total=None) if progress else None

            def _advance(done: int, total: int) -> None:
                if progress is not None and task is not None:
                    progress.update(task, completed=done, total=total)

            return await verify_chain(conn, log_id, s.log_name, genesis_hash(s.log_name), _advance, keys=load_keys(s))
        finally:
            await conn.close()

    try:
        if as_json:
            report = run(_verify(None))
        else:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            ) as progress:
                report = run(_verify(progress))
    except (OSError, asyncpg.PostgresError) as exc:
        fail(f"verification could not run: {type(exc).__name__}: {exc}")
    if report is None:
        fail(f"no log named {s.log_name!r} in this database (has the service ever started?)")
    if as_json:
        print(json.dumps(report.to_json()))
    elif report.ok:
        console.print(
            f"[bold green]intact[/]: {report.rows_checked} events in log {report.log_name!r} verified "
            f"in {report.seconds}s; head chain hash {report.head_chain_hash}",
            highlight=False,
        )
    else:
        assert report.damage is not None
        console.print(
            f"[bold red]TAMPERED[/]: first bad seq {report.damage.seq}: {report.damage.kind} ({report.damage.detail})",
            highlight=False,
        )
    raise typer.Exit(EXIT_OK if report.ok else EXIT_TAMPERED)


__all__ = ["EXIT_ERROR", "verify"]
