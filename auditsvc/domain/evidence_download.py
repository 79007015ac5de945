"""An evidence package for a signed-in person (the console's auditor page):
recorded in the chain first, a fresh checkpoint so the newest events are
covered, then the package written to a temporary file the page streams and
deletes. The same package ``auditsvc export`` writes (domain/evidence.py);
it verifies offline with ``auditsvc-verify``."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from ..runtime import AuditLog
from ..store.session import driver_connection
from .checkpoints import CheckpointRefused
from .errors import Conflict
from .evidence import ExportRangeError, ExportSpan, ExportSummary, write_package
from .log_ref import LogRef
from .read_audit import record_export_by
from .tokens import Caller


async def evidence_package(audit: AuditLog, reader: Caller) -> ExportSummary:
    """The whole log's package in a temporary file (the caller deletes ``path``)."""
    await record_export_by(audit, reader, from_seq=0, to_seq=None)
    try:
        signed = await audit.checkpointer.checkpoint_now()
    except CheckpointRefused as exc:
        raise Conflict(str(exc)) from None
    handle, name = tempfile.mkstemp(prefix="auditsvc-evidence-", suffix=".tar.gz")
    os.close(handle)
    out = Path(name)
    try:
        async with driver_connection(audit.engine) as conn:
            return await write_package(
                conn,
                LogRef.named(audit.log_id, audit.log_name),
                out,
                ExportSpan(signed.tree_size),
                witness_vkeys=[w.vkey for w in audit.settings.witnesses],
            )
    except ExportRangeError as exc:
        await asyncio.to_thread(out.unlink, missing_ok=True)
        raise Conflict(str(exc)) from None
    except BaseException:
        await asyncio.to_thread(out.unlink, missing_ok=True)
        raise
