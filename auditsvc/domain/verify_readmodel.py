"""Verification of the read model reports use (migration 0006).

``event_facts`` and ``patient_events`` are derived from the records, so a
superuser who edits or deletes their rows could hide an access from every
report without touching the chain. After the chain and the lookup index are
verified, this compares them with what the records say, in the same
snapshot: each ``event_facts`` row with the fields of its record (read again
by the database, an independent derivation from the one ingest used), each
``patient_events`` row with the lookup index (already checked against the
records) joined to its event. Rows the backfill has not reached yet
(store/readmodel.py) are not required, but every row present must match.
``event_ids`` (migration 0010: what keeps an ``event_id`` once across the
partitions of ``events``) is compared on the same read: each event has
exactly its own row.
"""

from __future__ import annotations

from ..store.readmodel import first_mismatch
from ..store.session import Connection, DataError
from .verify_range import Damage

READ_MODEL_MISMATCH = "read_model_mismatch"


async def check_read_model(
    conn: Connection, log_id: int, size: int, dsn: str | None = None, workers: int = 1
) -> Damage | None:
    """The first event (``seq < size``) whose read-model rows disagree with its
    record, if any; with ``dsn`` and ``workers``, compared in that many
    ranges at once on ``conn``'s snapshot."""
    try:
        mismatch = await first_mismatch(conn, log_id, size, dsn, workers)
    except DataError:
        detail = "a record's report fields could not be read to compare with the read model"
        return Damage(size, READ_MODEL_MISMATCH, detail)
    if mismatch is None:
        return None
    return Damage(mismatch.seq, READ_MODEL_MISMATCH, mismatch.detail)
