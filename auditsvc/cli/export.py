"""``auditsvc export``: an evidence package that verifies offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..domain.checkpoints import CheckpointRefused
from ..domain.evidence import ExportRangeError, ExportSpan, ExportSummary, write_package
from ..domain.log_ref import LogRef
from ..domain.read_audit import record_export
from ..keys import ensure_signing_key, load_keys
from ..store.session import driver_connection
from ._common import EXIT_TAMPERED, console, database, fail, run, settings
from ._log import open_log, sign_checkpoint_now


def export(
    out: Annotated[Path, typer.Option("--out", help="the package to write (.tar.gz)")],
    from_seq: Annotated[int, typer.Option("--from-seq", min=0, help="first event (default 0)")] = 0,
    to_seq: Annotated[
        int | None, typer.Option("--to-seq", min=0, help="last event, inclusive (default: the newest)")
    ] = None,
) -> None:
    """Write an evidence package: events with their hashes, signed checkpoints, proofs
    and verifier keys. Verify it anywhere with `auditsvc-verify FILE` (SDK only)."""
    s = settings()
    url = database(s)
    ensure_signing_key(s)

    async def _export() -> ExportSummary | None:
        async with open_log(url, s) as (engine, log_id):
            if log_id is None:
                return None
            async with driver_connection(engine) as conn:
                # On the record before anything is read out.
                await record_export(conn, log_id, s.log_name, load_keys(s), from_seq=from_seq, to_seq=to_seq)
            # A fresh checkpoint, so that the newest events are covered too.
            signed = await sign_checkpoint_now(engine, log_id, s)
            async with driver_connection(engine) as conn:
                return await write_package(
                    conn,
                    LogRef.named(log_id, s.log_name),
                    out,
                    ExportSpan(signed.tree_size, from_seq, to_seq),
                    witness_vkeys=[w.vkey for w in s.witnesses],
                )

    try:
        summary = run(_export())
    except CheckpointRefused as exc:
        fail(str(exc), EXIT_TAMPERED)
    except (ExportRangeError, OSError) as exc:
        fail(f"export failed: {exc}")
    if summary is None:
        fail(f"no log named {s.log_name!r} in this database (has the service ever started?)")
    console.print(
        f"wrote {summary.path}: events {summary.from_seq}..{summary.to_seq} ({summary.events}), "
        f"{summary.checkpoints} signed checkpoints, {summary.bytes:,} bytes. "
        f"Verify it with: auditsvc-verify {summary.path}",
        highlight=False,
    )
