"""Verification of the flow map's rollup (migration 0015).

``flow_days`` and ``flow_day_elements`` are what the flow and BAA reports
read instead of the log; a superuser who lowered a count or deleted a row
could hide a flow of PHI to a party without a BAA. After the read model is
verified against the records, this recomputes the rollup from
``event_facts`` in the same snapshot and names the first row that differs.
Skipped while the read model's backfill (migration 0006) is pending: the
rollup was built from the records, ``event_facts`` is not complete yet.
"""

from __future__ import annotations

from ..store.flows import first_flow_mismatch
from ..store.readmodel import backfill_state
from ..store.session import Connection
from .verify_range import Damage

FLOW_ROLLUP_MISMATCH = "flow_rollup_mismatch"


async def check_flow_rollup(conn: Connection, log_id: int, size: int) -> Damage | None:
    """The first event (``seq < size``) at which the rollup disagrees with the facts, if any."""
    complete, _ = await backfill_state(conn, log_id)
    if not complete:
        return None
    found = await first_flow_mismatch(conn, log_id, size)
    return None if found is None else Damage(found[0], FLOW_ROLLUP_MISMATCH, found[1])
