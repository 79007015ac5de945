"""SQL the report statements share: a patient's events, and a keyset page's records.

Their parameters follow one convention: ``$1`` the log, ``$2`` the subject
(a patient's keyed identifier hashes, or a system or actor id), ``$3``/``$4``
the period, ``$5`` the snapshot (rows with a ``seq`` below it), and for a
page ``$6``/``$7`` the keyset position (occurred_at, seq) it starts after
and ``$8`` its size. Every lookup by ``seq`` is a LATERAL subquery with
LIMIT, which PostgreSQL cannot flatten into a join: whatever plan it caches
for the prepared statement, the rows read are bounded by the subject's rows,
never by the log's (tests/test_*_plans.py).
"""

from __future__ import annotations

from datetime import datetime

from .session import Connection

# One patient's events: per linked identifier, one range scan of
# patient_events (log_id, id_hmac, occurred_at, seq), merged and deduplicated
# (an event naming two of the patient's identifiers is found twice).
PATIENT_HITS = """
hits AS (
    SELECT DISTINCT p.occurred_at, p.seq
    FROM unnest($2::bytea[]) AS h(id_hmac)
    CROSS JOIN LATERAL (
        SELECT pe.occurred_at, pe.seq FROM patient_events pe
        WHERE pe.log_id = $1 AND pe.id_hmac = h.id_hmac
          AND pe.occurred_at >= $3 AND pe.occurred_at <= $4 AND pe.seq < $5
    ) p
)"""

# The records of a page whose keys a CTE ``page (occurred_at, seq)`` holds:
# the JSON record is read only for the rows returned.
PAGE_RECORDS = """
SELECT page.seq, page.occurred_at, e.record
FROM page
CROSS JOIN LATERAL (SELECT e.record FROM events e WHERE e.log_id = $1 AND e.seq = page.seq LIMIT 1) e
ORDER BY page.occurred_at, page.seq
"""

# One branch per index the subject is found through: {col} is a column of
# event_facts equal to $2, each branch with its own ORDER BY ... LIMIT.
_FACTS_BRANCH = """
    (SELECT f.occurred_at, f.seq FROM event_facts f
     WHERE f.log_id = $1 AND f.{col} = $2 AND (f.occurred_at, f.seq) > ($6, $7)
       AND f.occurred_at >= $3 AND f.occurred_at <= $4 AND f.seq < $5
     ORDER BY f.occurred_at, f.seq LIMIT $8)
"""

_FACTS_PAGE = """
WITH page AS (
    SELECT DISTINCT u.occurred_at, u.seq FROM ({branches}) u
    ORDER BY u.occurred_at, u.seq
    LIMIT $8
)"""


def facts_page_sql(*columns: str) -> str:
    """A page of the events whose ``columns`` (any of them) of event_facts
    equal the subject: one range scan per column's index, merged."""
    branches = " UNION ALL ".join(_FACTS_BRANCH.format(col=c) for c in columns)
    return _FACTS_PAGE.format(branches=branches) + PAGE_RECORDS


async def fetch_page(conn: Connection, sql: str, *params: object) -> list[tuple[int, datetime, str]]:
    """(seq, occurred_at, record) of a page statement's rows, in its order."""
    return [(r["seq"], r["occurred_at"], r["record"]) for r in await conn.fetch(sql, *params)]


async def facts_page(
    conn: Connection,
    sql: str,
    log_id: int,
    subject: str,
    start: datetime,
    end: datetime,
    as_of: int,
    after: tuple[datetime, int],
    limit: int,
) -> list[tuple[int, datetime, str]]:
    """(seq, occurred_at, record) of ``subject``'s events in (occurred_at,
    seq) order after ``after``; ``sql`` is a ``facts_page_sql`` statement."""
    return await fetch_page(conn, sql, log_id, subject, start, end, as_of, after[0], after[1], limit)
