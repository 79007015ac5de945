"""``auditsvc verify``: recompute the whole chain from the database."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from auditsvc_sdk.note import Checkpoint, NoteError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..domain.verification_runs import record_cli_run
from ..domain.verify import CheckpointClaim, LogRef, ResumeState, VerifyOptions, VerifyReport, verify_chain
from ..keys import load_keys
from ..store.engine import asyncpg_dsn
from ..store.logs import log_id_for
from ..store.session import DatabaseError, connect
from ..telemetry.metrics import record_verification
from ._common import EXIT_ERROR, EXIT_OK, EXIT_TAMPERED, console, database, err_console, fail, run, settings


def verify(
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="a signed checkpoint kept outside the database (a file, or a directory of *.note files); repeatable",
        ),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="pin the log's verifier key (vkey form); repeatable. Default: the stored keys"),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="incremental: resume from this state file if it exists, and save the new state there",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="processes that verify ranges of a large log in parallel (0, the default: one per CPU available)",
        ),
    ] = 0,
    no_index_check: Annotated[
        bool,
        typer.Option(
            "--no-index-check",
            help="skip checking the patient lookup index (event_identifiers) against the records: the chain, "
            "tree and checkpoints only (about 40%% faster); the result says index_checked: false",
        ),
    ] = False,
) -> None:
    """Verify the store: exit 0 intact, 1 tampering found, 2 could not run."""
    s = settings()
    url = database(s)
    try:
        external = load_external_checkpoints(checkpoint or [])
        resume = ResumeState.from_json(json.loads(state.read_text())) if state and state.exists() else None
    except (OSError, ValueError) as exc:
        fail(f"verification could not run: {exc}")

    async def _verify(progress: Progress | None) -> VerifyReport | None:
        conn = await connect(url)
        try:
            log_id = await log_id_for(conn, s.log_name)
            if log_id is None:
                return None
            task = progress.add_task("verifying", total=None) if progress else None

            def _advance(done: int, total: int) -> None:
                if progress is not None and task is not None:
                    progress.update(task, completed=done, total=total)

            options = VerifyOptions(
                keys=load_keys(s, sealing=False),  # verification never opens identifiers
                check_index=not no_index_check,
                trusted_vkeys=tuple(key) if key else None,
                external=tuple(external),
                resume=resume,
                dsn=asyncpg_dsn(url),
                workers=workers or len(os.sched_getaffinity(0)),
            )
            log = LogRef.named(log_id, s.log_name)
            # Recorded as a run (the console's auditor page shows the last one) when none is running.
            report, _ = await record_cli_run(
                conn, log_id, f"cli:{getpass.getuser()}", lambda: verify_chain(conn, log, options, _advance)
            )
            return report
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
    except (OSError, DatabaseError) as exc:
        fail(f"verification could not run: {type(exc).__name__}: {exc}")
    if report is None:
        fail(f"no log named {s.log_name!r} in this database (has the service ever started?)")
    record_verification(s, report.damage.kind if report.damage else None)  # auditsvc.verify.* metrics
    if state is not None and report.ok and report.state is not None:
        tmp = state.with_name(state.name + ".tmp")
        tmp.write_text(json.dumps(report.state) + "\n")
        tmp.replace(state)
    if as_json:
        print(json.dumps(report.to_json()))
    elif report.ok:
        resumed = f" (resumed at seq {report.resumed_from})" if report.resumed_from else ""
        console.print(
            f"[bold green]intact[/]: {report.rows_checked} events in log {report.log_name!r} verified{resumed} "
            f"in {report.seconds}s; head chain hash {report.head_chain_hash}; "
            f"{report.checkpoints_checked} stored and {report.external_checked} external checkpoints match "
            f"({'pinned keys' if report.keys_pinned else 'keys from the database: pin them with --key'}); "
            f"patient lookup index {'matches the records' if report.index_checked else 'not checked'}",
            highlight=False,
        )
    else:
        assert report.damage is not None
        console.print(
            f"[bold red]TAMPERED[/]: first bad seq {report.damage.seq}: {report.damage.kind} ({report.damage.detail})",
            highlight=False,
        )
    raise typer.Exit(EXIT_OK if report.ok else EXIT_TAMPERED)


def load_external_checkpoints(paths: list[Path]) -> list[CheckpointClaim]:
    """Signed checkpoint notes from files or directories of ``*.note`` files
    (their signatures are checked by verification, with the pinned keys)."""
    claims = []
    for path in paths:
        files = sorted(path.glob("*.note")) if path.is_dir() else [path]
        for file in files:
            note = file.read_text(encoding="utf-8")
            split = note.rfind("\n\n")
            try:
                cp = Checkpoint.parse(note[: split + 1]) if split >= 0 else None
            except NoteError as exc:
                raise ValueError(f"{file} is not a signed checkpoint: {exc}") from None
            if cp is None:
                raise ValueError(f"{file} is not a signed checkpoint (no signature block)")
            claims.append(CheckpointClaim(cp.size, cp.root_hash, note, external=True))
    return claims


__all__ = ["EXIT_ERROR", "verify"]
