"""Queries behind the by-system and by-actor reports (issue 15, point 2).

An event concerns system X when X is its source or its destination: two
range scans of the read model (``event_facts_source`` and
``event_facts_destination``, (log_id, system, occurred_at, seq)), each with
its own ``ORDER BY ... LIMIT``, merged; an actor's events are one range scan
of ``event_facts_actor``. The JSON record is read only for the page
returned.

The summary (counterparts, data elements, patient keys) aggregates the
subject's first ``cap`` events of the period and no more: its cost is bounded
by the cap whatever the size of the log or of the subject's traffic, and the
answer says whether it covered the whole period (domain/access_reports.py).
Its patient keys come from ``patient_events`` by ``seq`` (the index of
migration 0007).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .report_sql import facts_page_sql
from .session import Connection

SYSTEM_PAGE_SQL = facts_page_sql("source_system", "destination_system")
ACTOR_PAGE_SQL = facts_page_sql("actor_id")

_HIT_BRANCH = """
    (SELECT f.occurred_at, f.seq, f.source_system AS src, f.destination_system AS dst, f.data_elements
     FROM event_facts f
     WHERE f.log_id = $1 AND f.{col} = $2 AND f.occurred_at >= $3 AND f.occurred_at <= $4 AND f.seq < $5
     ORDER BY f.occurred_at, f.seq LIMIT $6)
"""

# The first $6 events of the period, each once, with their facts (read by
# the index scan that finds them); their patients' keys by seq (a LATERAL
# with LIMIT: never a join that PostgreSQL could turn into a scan of the
# whole table).
_SUMMARY = """
WITH facts AS MATERIALIZED (
    SELECT DISTINCT ON (u.occurred_at, u.seq) u.* FROM ({branches}) u
    ORDER BY u.occurred_at, u.seq
    LIMIT $6
),
roles AS MATERIALIZED ({roles})
SELECT
    (SELECT count(*) FROM facts) AS events,
    (SELECT max(occurred_at) FROM facts) AS through,
    (SELECT jsonb_agg(jsonb_build_array(c.system_id, c.as_source, c.as_destination, c.n)
                      ORDER BY c.n DESC, c.system_id)
     FROM (SELECT system_id, count(*) FILTER (WHERE as_source) AS as_source,
                  count(*) FILTER (WHERE as_destination) AS as_destination, count(*) AS n
           FROM roles GROUP BY system_id) c) AS counterparts,
    (SELECT array_agg(DISTINCT d ORDER BY d) FROM facts CROSS JOIN LATERAL unnest(facts.data_elements) AS d)
        AS data_elements,
    (SELECT array_agg(DISTINCT p.id_hmac)
     FROM facts CROSS JOIN LATERAL (
        SELECT pe.id_hmac FROM patient_events pe WHERE pe.log_id = $1 AND pe.seq = facts.seq LIMIT 20
     ) p) AS patient_keys
"""

# For a system X: each event's other party, counted as source when X was the
# destination and as destination when X was the source (an event from X to X
# names X once, as both).
_SYSTEM_ROLES = """
    SELECT CASE WHEN src = $2 THEN dst ELSE src END AS system_id, dst = $2 AS as_source, src = $2 AS as_destination
    FROM facts
"""
# For an actor: every system its events moved data between, each event
# counted once per system (as source, destination or both).
_ACTOR_ROLES = """
    SELECT src AS system_id, true AS as_source, src = dst AS as_destination FROM facts
    UNION ALL
    SELECT dst, false, true FROM facts WHERE src <> dst
"""

SYSTEM_SUMMARY_SQL = _SUMMARY.format(
    branches=" UNION ALL ".join(_HIT_BRANCH.format(col=c) for c in ("source_system", "destination_system")),
    roles=_SYSTEM_ROLES,
)
ACTOR_SUMMARY_SQL = _SUMMARY.format(branches=_HIT_BRANCH.format(col="actor_id"), roles=_ACTOR_ROLES)

# One step of the identifier links from each key (stored as a star from each
# event's first identifier, both ways: store/append.py), bounded per key.
LINKS_SQL = """
SELECT l.a, l.b
FROM unnest($2::bytea[]) AS h(a)
CROSS JOIN LATERAL (SELECT l.a, l.b FROM identifier_links l WHERE l.log_id = $1 AND l.a = h.a LIMIT $3) l
"""


@dataclass(frozen=True)
class Counterpart:
    system_id: str
    as_source: int
    as_destination: int
    count: int


@dataclass(frozen=True)
class AccessSummary:
    events: int  # how many events the summary covered (at most the cap)
    through: datetime | None  # the last of them
    counterparts: list[Counterpart]
    data_elements: list[str]
    patient_keys: list[bytes]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def access_summary(
    conn: Connection, sql: str, log_id: int, subject: str, start: datetime, end: datetime, as_of: int, cap: int
) -> AccessSummary:
    """The summary over the subject's first ``cap`` events of the period;
    ``sql`` is ``SYSTEM_SUMMARY_SQL`` or ``ACTOR_SUMMARY_SQL``."""
    row = await conn.fetchrow(sql, log_id, subject, start, end, as_of, cap)
    assert row is not None
    return AccessSummary(
        events=int(row["events"]),
        through=row["through"],
        counterparts=[Counterpart(s, int(a), int(d), int(n)) for s, a, d, n in (_json(row["counterparts"]) or [])],
        data_elements=list(row["data_elements"] or []),
        patient_keys=[bytes(k) for k in row["patient_keys"] or []],
    )


async def identifier_links(conn: Connection, log_id: int, keys: list[bytes], per_key: int) -> list[tuple[bytes, bytes]]:
    """The stored links (a, b) from each of ``keys``, at most ``per_key`` each."""
    rows = await conn.fetch(LINKS_SQL, log_id, keys, per_key)
    return [(bytes(r["a"]), bytes(r["b"])) for r in rows]


# Scalar subqueries in index order with LIMIT 1 (EXISTS would drop the
# ORDER BY and let a generic plan scan the whole table for a system no event
# names: tests/test_access_report_plans.py).
_SEEN = "(SELECT f.seq FROM event_facts f WHERE f.log_id = $1 AND f.{col} = $2 ORDER BY f.occurred_at, f.seq LIMIT 1)"
SYSTEM_SEEN_SQL = (
    "SELECT "
    + _SEEN.format(col="source_system")
    + " IS NOT NULL OR "
    + _SEEN.format(col="destination_system")
    + " IS NOT NULL"
)
ACTOR_SEEN_SQL = "SELECT " + _SEEN.format(col="actor_id") + " IS NOT NULL"


async def subject_seen(conn: Connection, log_id: int, system: bool, subject: str) -> bool:
    """Whether any event names the system (as source or destination) or the actor."""
    return bool(await conn.fetchval(SYSTEM_SEEN_SQL if system else ACTOR_SEEN_SQL, log_id, subject))
