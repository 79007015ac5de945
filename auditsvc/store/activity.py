"""Queries behind the activity review record: the service's own events.

Every report, export, review and registry change the service makes is an
event with source system ``auditsvc`` (emitters may not claim it:
domain/reserved.py), so the record of who examined the log is one range
scan of ``event_facts_source`` (log_id, source_system, occurred_at, seq),
keyset-paged, reading the JSON record of the page only.
"""

from __future__ import annotations

from datetime import datetime

from .report_sql import facts_page_sql, fetch_page
from .session import Connection

ACTIVITY_PAGE_SQL = facts_page_sql("source_system")  # the service's own events: source auditsvc


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
    return await fetch_page(conn, ACTIVITY_PAGE_SQL, log_id, service_system, start, end, as_of, *after, limit)
