"""Verification of the coverage report's pairs (migration 0008).

``system_pairs`` says, for each source -> destination pair, which event
first named it; a superuser who deleted a row could hide a new flow of PHI
from the coverage report, or one who added a row could invent one. After the
read model is verified against the records, this checks every pair row
against ``event_facts`` (its first event carries that pair, at that time)
and every pair of ``event_facts`` against the rows (it has one, naming no
later event than its first), in the same snapshot.
"""

from __future__ import annotations

from ..store.coverage import first_pair_mismatch
from ..store.readmodel import backfill_state
from ..store.session import Connection
from .verify_range import Damage

SYSTEM_PAIRS_MISMATCH = "system_pairs_mismatch"


async def check_system_pairs(conn: Connection, log_id: int, size: int) -> Damage | None:
    """The first event (``seq < size``) at which the pairs disagree with the facts, if any."""
    complete, progress = await backfill_state(conn, log_id)
    found = await first_pair_mismatch(conn, log_id, size, size if complete else progress)
    return None if found is None else Damage(found[0], SYSTEM_PAIRS_MISMATCH, found[1])
