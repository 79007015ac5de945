"""Queries behind the activity review record: the service's own events.

Every report, export, review and registry change the service makes is an
event with source system ``auditsvc`` (emitters may not claim it:
domain/reserved.py), so the record of who examined the log is one range
scan of ``event_facts_source`` (log_id, source_system, occurred_at, seq),
keyset-paged, reading the JSON record of the page only.
"""

from __future__ import annotations

from datetime import datetime

from .session import Connection

ACTIVITY_PAGE_SQL = """
WITH page AS (
    SELECT f.occurred_at, f.seq FROM event_facts f
    WHERE f.log_id = $1 AND f.source_system = $2 AND (f.occurred_at, f.seq) > ($6, $7)
      AND f.occurred_at >= $3 AND f.occurred_at <= $4 AND f.seq < $5
    ORDER BY f.occurred_at, f.seq
    LIMIT $8
)
SELECT page.seq, page.occurred_at, e.record
FROM page
CROSS JOIN LATERAL (SELECT e.record FROM events e WHERE e.log_id = $1 AND e.seq = page.seq LIMIT 1) e
ORDER BY page.occurred_at, page.seq
"""


async def activity_page(
    conn: Connection,
    log_id: int,
    service_system: str,
    start: datetime,
    end: datetime,
    as_of: int,
    after: tuple[datetime, int],
    limit: int,
) -> list[tuple[int, datetime, str]]:
    """(seq, occurred_at, record) of the service's own events in the period,
    in (occurred_at, seq) order after ``after``."""
    rows = await conn.fetch(ACTIVITY_PAGE_SQL, log_id, service_system, start, end, as_of, after[0], after[1], limit)
    return [(r["seq"], r["occurred_at"], r["record"]) for r in rows]
