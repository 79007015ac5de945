"""Queries behind the break-glass review queue (migration 0009).

The queue is the break-glass rows of ``event_facts``, walked through the
partial index ``event_facts_break_glass`` in (occurred_at, seq) order; an
event's reviews are the service's own ``break-glass-review`` events naming
it as their one data element, found through ``event_facts_reviews``. Every
lookup by key is a LATERAL subquery with LIMIT (as in store/reports.py), so
whatever plan PostgreSQL caches, a page reads the queue rows it walks past
and the page's reviews, never the log: tests/test_reviews_plans.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from .session import Connection

REVIEW_EVENT_TYPE = "break-glass-review"
REVIEW_SOURCE = "auditsvc"  # only events the service appended itself count as reviews
REVIEWED_PREFIX = "AuditEvent/"  # a review's one data element: AuditEvent/<reviewed event_id>

Status = Literal["all", "reviewed", "unreviewed"]

# A status filter skips queue rows (listing the unreviewed walks past every
# access already reviewed, which over years is most of them), so a request
# walks at most a budget of queue rows: the position of the last row within
# it, and how many there were (fewer than the budget: the range's end is near).
# $1 log, $2..$3 occurred_at range, $4 the snapshot, ($5, $6) the keyset
# position, $7 the budget. Reads the partial index only.
WALK_SQL = """
SELECT w.occurred_at, w.seq, count(*) OVER () AS n
FROM (
    SELECT f.occurred_at, f.seq FROM event_facts f
    WHERE f.log_id = $1 AND f.break_glass
      AND f.occurred_at >= $2 AND f.occurred_at <= $3 AND f.seq < $4
      AND (f.occurred_at, f.seq) > ($5, $6)
    ORDER BY f.occurred_at, f.seq
    LIMIT $7
) w
ORDER BY w.occurred_at DESC, w.seq DESC
LIMIT 1
"""

# $1 log, $2..$3 occurred_at range, $4 the snapshot (tree size), ($5, $6) the
# keyset position, $7 the page size, $8 'all' | 'reviewed' | 'unreviewed',
# ($9, $10) the last position to consider (the walk's end).
# Walking the partial index in order, each row's review is one index probe;
# the filter on it may skip rows, each of them a queue row within the walk.
QUEUE_SQL = f"""
WITH page AS (
    SELECT f.seq, f.occurred_at, e.event_id, rv.reviewed
    FROM event_facts f
    CROSS JOIN LATERAL (SELECT e.event_id FROM events e WHERE e.log_id = $1 AND e.seq = f.seq LIMIT 1) e
    CROSS JOIN LATERAL (
        SELECT count(*) > 0 AS reviewed FROM (
            SELECT 1 FROM event_facts r
            WHERE r.log_id = $1 AND r.event_type = '{REVIEW_EVENT_TYPE}' AND r.source_system = '{REVIEW_SOURCE}'
              AND r.data_elements[1] = '{REVIEWED_PREFIX}' || e.event_id::text AND r.seq < $4
            LIMIT 1
        ) one
    ) rv
    WHERE f.log_id = $1 AND f.break_glass
      AND f.occurred_at >= $2 AND f.occurred_at <= $3 AND f.seq < $4
      AND (f.occurred_at, f.seq) > ($5, $6) AND (f.occurred_at, f.seq) <= ($9, $10)
      AND ($8::text = 'all' OR ($8::text = 'reviewed') = rv.reviewed)
    ORDER BY f.occurred_at, f.seq
    LIMIT $7
)
SELECT page.seq, page.occurred_at, page.event_id, page.reviewed, e.record
FROM page
CROSS JOIN LATERAL (SELECT e.record FROM events e WHERE e.log_id = $1 AND e.seq = page.seq LIMIT 1) e
ORDER BY page.occurred_at, page.seq
"""

# The reviews (oldest first, at most $4 each) of the events named in $2 (as
# review keys, AuditEvent/<event_id>), below the snapshot $3.
REVIEWS_SQL = f"""
SELECT k.key, r.seq, e.record
FROM unnest($2::text[]) AS k(key)
CROSS JOIN LATERAL (
    SELECT r.seq FROM event_facts r
    WHERE r.log_id = $1 AND r.event_type = '{REVIEW_EVENT_TYPE}' AND r.source_system = '{REVIEW_SOURCE}'
      AND r.data_elements[1] = k.key AND r.seq < $3
    ORDER BY r.seq DESC
    LIMIT $4
) r
CROSS JOIN LATERAL (SELECT e.record FROM events e WHERE e.log_id = $1 AND e.seq = r.seq LIMIT 1) e
ORDER BY k.key, r.seq
"""

FACTS_SQL = "SELECT break_glass FROM event_facts WHERE log_id = $1 AND seq = $2"


@dataclass(frozen=True)
class QueueRow:
    seq: int
    occurred_at: datetime
    event_id: UUID
    reviewed: bool
    record: str


def review_key(event_id: UUID | str) -> str:
    """The data element a review of ``event_id`` carries (and is found by)."""
    return f"{REVIEWED_PREFIX}{event_id}"


_BEYOND = 2**62  # past any seq


async def walk_end(
    conn: Connection,
    log_id: int,
    start: datetime,
    end: datetime,
    as_of: int,
    after: tuple[datetime, int],
    budget: int,
) -> tuple[datetime, int] | None:
    """The position of the ``budget``-th queue row after ``after``, or None
    when fewer than ``budget`` rows remain in the range."""
    row = await conn.fetchrow(WALK_SQL, log_id, start, end, as_of, after[0], after[1], budget)
    if row is None or int(row["n"]) < budget:
        return None
    return row["occurred_at"], int(row["seq"])


async def queue_page(
    conn: Connection,
    log_id: int,
    status: Status,
    start: datetime,
    end: datetime,
    as_of: int,
    after: tuple[datetime, int],
    limit: int,
    until: tuple[datetime, int] | None = None,
) -> list[QueueRow]:
    """Break-glass events after the keyset position ``after`` (and up to
    ``until``, inclusive, when given), in (occurred_at, seq) order."""
    last = until if until is not None else (end, _BEYOND)
    rows = await conn.fetch(QUEUE_SQL, log_id, start, end, as_of, after[0], after[1], limit, status, *last)
    return [QueueRow(r["seq"], r["occurred_at"], r["event_id"], r["reviewed"], r["record"]) for r in rows]


async def reviews_of(
    conn: Connection, log_id: int, event_ids: list[UUID], as_of: int, per_event: int
) -> dict[str, list[tuple[int, str]]]:
    """Per reviewed event id (as text): its latest ``per_event`` reviews as (seq, record), oldest first."""
    keys = [review_key(e) for e in event_ids]
    found: dict[str, list[tuple[int, str]]] = {str(e): [] for e in event_ids}
    for r in await conn.fetch(REVIEWS_SQL, log_id, keys, as_of, per_event):
        found[r["key"][len(REVIEWED_PREFIX) :]].append((int(r["seq"]), r["record"]))
    return found


async def is_break_glass(conn: Connection, log_id: int, seq: int) -> bool | None:
    """Whether the event at ``seq`` is a break-glass access (None: no read-model row)."""
    value = await conn.fetchval(FACTS_SQL, log_id, seq)
    return None if value is None else bool(value)
