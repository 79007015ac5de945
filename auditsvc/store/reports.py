"""Queries behind the patient-access report.

A patient is found by the keyed hash of one identifier; the identifiers
linked to it (seen together in some event, transitively) are walked through
``identifier_links``; events are found through the read model
(``patient_events``, ``event_facts``: store/readmodel.py), and the JSON
record is read only for the page of events returned. Every statement here
reads a number of rows bounded by what it returns (or, for the per-system
summary, by the patient's events), whatever plan PostgreSQL caches:
tests/test_report_plans.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .events import COMMITTED_SIZE_SQL
from .report_sql import PAGE_RECORDS, PATIENT_HITS, fetch_page
from .session import Connection

# A component this large means identifiers are being linked wrongly (a
# placeholder value such as "UNKNOWN" shared by many patients); stop walking.
MAX_LINKED_IDENTIFIERS = 1000

# Each step looks up one identifier's links by primary key (a LATERAL
# subquery with LIMIT: never turned into a hash join over the whole table).
COMPONENT_SQL = """
WITH RECURSIVE component(h) AS (
    SELECT $2::bytea
    UNION
    SELECT l.b FROM component c
    CROSS JOIN LATERAL (SELECT l.b FROM identifier_links l WHERE l.log_id = $1 AND l.a = c.h LIMIT $3) l
)
SELECT h FROM component LIMIT $3
"""

# The patient's events (report_sql.PATIENT_HITS), then each one's facts by seq.
_HITS = (
    PATIENT_HITS
    + """,
facts AS MATERIALIZED (
    SELECT f.*
    FROM hits
    CROSS JOIN LATERAL (
        SELECT f.occurred_at, f.action, f.data_elements, f.source_system AS src, f.destination_system AS dst,
               f.actor_id, f.actor_type, f.actor_role, f.actor_name
        FROM event_facts f WHERE f.log_id = $1 AND f.seq = hits.seq LIMIT 1
    ) f
)
"""
)

# Grouped first by (source, destination) pair, with hash aggregates (a
# frequent patient's thousands of events make a few pairs), then each pair
# counted for its source as source and for its destination as destination
# (once, as both, when they are the same system).
_SYSTEMS_TAIL = """,
pairs AS MATERIALIZED (
    SELECT src, dst, count(*) AS n, min(occurred_at) AS first_access, max(occurred_at) AS last_access
    FROM facts GROUP BY src, dst
),
pair_actions AS MATERIALIZED (SELECT DISTINCT src, dst, action FROM facts),
pair_actors AS MATERIALIZED (SELECT DISTINCT src, dst, actor_id, actor_type, actor_role, actor_name FROM facts),
pair_elements AS MATERIALIZED (
    SELECT DISTINCT f.src, f.dst, d FROM facts f CROSS JOIN LATERAL unnest(f.data_elements) AS d
),
roles AS MATERIALIZED (
    SELECT src, dst, src AS system_id, true AS as_source, src = dst AS as_destination, n, first_access, last_access
    FROM pairs
    UNION ALL
    SELECT src, dst, dst, false, true, n, first_access, last_access FROM pairs WHERE src <> dst
),
counts AS (
    SELECT system_id,
           sum(n)::bigint AS count,
           coalesce(sum(n) FILTER (WHERE as_source), 0)::bigint AS as_source,
           coalesce(sum(n) FILTER (WHERE as_destination), 0)::bigint AS as_destination,
           min(first_access) AS first_access,
           max(last_access) AS last_access
    FROM roles GROUP BY system_id
),
actions AS (
    SELECT r.system_id, array_agg(DISTINCT a.action ORDER BY a.action) AS actions
    FROM roles r JOIN pair_actions a ON a.src = r.src AND a.dst = r.dst GROUP BY r.system_id
),
actors AS (
    SELECT r.system_id,
           jsonb_agg(DISTINCT jsonb_strip_nulls(jsonb_build_object(
               'id', a.actor_id, 'type', a.actor_type, 'role', a.actor_role, 'name', a.actor_name))) AS actors
    FROM roles r JOIN pair_actors a ON a.src = r.src AND a.dst = r.dst GROUP BY r.system_id
),
elements AS (
    SELECT r.system_id, array_agg(DISTINCT e.d ORDER BY e.d) AS data_elements
    FROM roles r JOIN pair_elements e ON e.src = r.src AND e.dst = r.dst GROUP BY r.system_id
)
SELECT c.*, a.actions, p.actors, e.data_elements
FROM counts c
JOIN actions a ON a.system_id = c.system_id
JOIN actors p ON p.system_id = c.system_id
LEFT JOIN elements e ON e.system_id = c.system_id
ORDER BY c.count DESC, c.system_id
"""
SYSTEMS_SQL = "WITH " + _HITS + _SYSTEMS_TAIL

# A page: per identifier, the next ``$8`` rows after the keyset position in
# (occurred_at, seq) order, merged; then the records of that page only.
EVENTS_SQL = (
    """
WITH page AS (
    SELECT DISTINCT p.occurred_at, p.seq
    FROM unnest($2::bytea[]) AS h(id_hmac)
    CROSS JOIN LATERAL (
        SELECT pe.occurred_at, pe.seq FROM patient_events pe
        WHERE pe.log_id = $1 AND pe.id_hmac = h.id_hmac
          AND (pe.occurred_at, pe.seq) > ($6, $7) AND pe.occurred_at >= $3 AND pe.occurred_at <= $4
          AND pe.seq < $5
        ORDER BY pe.occurred_at, pe.seq
        LIMIT $8
    ) p
    ORDER BY p.occurred_at, p.seq
    LIMIT $8
)"""
    + PAGE_RECORDS
)


def _facts_filter(first: int) -> str:
    """The report's filters on event_facts ``f`` as parameters ``$first`` ...
    ``$first+4``: a system (as source or destination), an action, a purpose of
    use, break-glass only, an outcome; a NULL (or false) parameter filters nothing."""
    system, action, purpose, break_glass, outcome = (f"${first + i}" for i in range(5))
    return (
        f"({system}::text IS NULL OR f.source_system = {system} OR f.destination_system = {system})"
        f" AND ({action}::text IS NULL OR f.action = {action})"
        f" AND ({purpose}::text IS NULL OR f.purpose_of_use = {purpose})"
        f" AND (NOT {break_glass}::boolean OR f.break_glass)"
        f" AND ({outcome}::smallint IS NULL OR f.outcome = {outcome})"
    )


# The patient's events that pass the filters ($6..$10): each hit's facts
# looked up by seq, with the filters, so the rows read are the patient's.
_FILTERED_HITS = (
    PATIENT_HITS
    + f""",
facts AS MATERIALIZED (
    SELECT f.*
    FROM hits
    CROSS JOIN LATERAL (
        SELECT f.occurred_at, f.action, f.data_elements, f.source_system AS src, f.destination_system AS dst,
               f.actor_id, f.actor_type, f.actor_role, f.actor_name
        FROM event_facts f WHERE f.log_id = $1 AND f.seq = hits.seq AND {_facts_filter(6)} LIMIT 1
    ) f
)
"""
)
FILTERED_SYSTEMS_SQL = "WITH " + _FILTERED_HITS + _SYSTEMS_TAIL

# Accesses per system per UTC day (the console's timeline), filtered as above;
# an event counts once for each system it touched.
DAILY_SQL = (
    "WITH "
    + _FILTERED_HITS
    + """,
days AS MATERIALIZED (
    SELECT src, dst, date_trunc('day', occurred_at, 'UTC') AS day, count(*) AS n FROM facts GROUP BY 1, 2, 3
)
SELECT system_id, day, sum(n)::bigint AS count
FROM (SELECT src AS system_id, day, n FROM days UNION ALL SELECT dst, day, n FROM days WHERE src <> dst) r
GROUP BY system_id, day
ORDER BY system_id, day
"""
)

# A page of the events that pass the filters ($9..$13): per identifier, its
# events in keyset order, each one's facts looked up by seq and filtered,
# until ``$8`` pass; merged. The rows read are bounded by the patient's.
FILTERED_EVENTS_SQL = (
    f"""
WITH page AS (
    SELECT DISTINCT p.occurred_at, p.seq
    FROM unnest($2::bytea[]) AS h(id_hmac)
    CROSS JOIN LATERAL (
        SELECT pe.occurred_at, pe.seq FROM patient_events pe
        CROSS JOIN LATERAL (
            SELECT 1 FROM event_facts f WHERE f.log_id = $1 AND f.seq = pe.seq AND {_facts_filter(9)} LIMIT 1
        ) passes
        WHERE pe.log_id = $1 AND pe.id_hmac = h.id_hmac
          AND (pe.occurred_at, pe.seq) > ($6, $7) AND pe.occurred_at >= $3 AND pe.occurred_at <= $4
          AND pe.seq < $5
        ORDER BY pe.occurred_at, pe.seq
        LIMIT $8
    ) p
    ORDER BY p.occurred_at, p.seq
    LIMIT $8
)"""
    + PAGE_RECORDS
)


IDENTIFIERS_SQL = (
    "SELECT system, value, value_enc FROM patient_identifiers WHERE log_id = $1 AND id_hmac = ANY($2::bytea[])"
)
TREE_SIZE_SQL = COMMITTED_SIZE_SQL  # the snapshot a report reads (store/events.py committed_size)


@dataclass(frozen=True)
class SystemAccess:
    system_id: str
    count: int
    as_source: int
    as_destination: int
    first_access: datetime
    last_access: datetime
    actions: list[str]
    data_elements: list[str]
    actors: list[dict[str, Any]]


def _json(value: Any) -> Any:
    # SQLAlchemy's asyncpg dialect installs a jsonb codec on pooled
    # connections; a bare asyncpg connection returns text.
    return json.loads(value) if isinstance(value, str) else value


async def linked_identifier_hmacs(conn: Connection, log_id: int, id_hmac: bytes) -> list[bytes]:
    rows = await conn.fetch(COMPONENT_SQL, log_id, id_hmac, MAX_LINKED_IDENTIFIERS)
    return [bytes(r["h"]) for r in rows]


async def identifiers_for(
    conn: Connection, log_id: int, hmacs: list[bytes]
) -> list[tuple[str, str | None, str | None]]:
    """(system, value in clear, sealed value): one of the two values is set
    (rows stored before identifiers were encrypted hold the clear one)."""
    rows = await conn.fetch(IDENTIFIERS_SQL, log_id, hmacs)
    return [(r["system"], r["value"], r["value_enc"]) for r in rows]


FilterParams = tuple[str | None, str | None, str | None, bool, int | None]
"""The filters' parameters: system, action, purpose of use, break-glass only, outcome."""


async def system_accesses(
    conn: Connection,
    log_id: int,
    hmacs: list[bytes],
    start: datetime,
    end: datetime,
    as_of: int,
    filters: FilterParams | None = None,
) -> list[SystemAccess]:
    """Per-system rows over events with ``seq < as_of`` (the report's snapshot)."""
    if filters is None:
        rows = await conn.fetch(SYSTEMS_SQL, log_id, hmacs, start, end, as_of)
    else:
        rows = await conn.fetch(FILTERED_SYSTEMS_SQL, log_id, hmacs, start, end, as_of, *filters)
    return [
        SystemAccess(
            system_id=r["system_id"],
            count=r["count"],
            as_source=r["as_source"],
            as_destination=r["as_destination"],
            first_access=r["first_access"],
            last_access=r["last_access"],
            actions=list(r["actions"]),
            data_elements=list(r["data_elements"] or []),
            actors=sorted(_json(r["actors"]) or [], key=lambda a: (a["id"], a["type"])),
        )
        for r in rows
    ]


async def access_events(
    conn: Connection,
    log_id: int,
    hmacs: list[bytes],
    start: datetime,
    end: datetime,
    as_of: int,
    after: tuple[datetime, int],
    limit: int,
) -> list[tuple[int, datetime, str]]:
    """Events in (occurred_at, seq) order after the keyset position ``after``."""
    return await fetch_page(conn, EVENTS_SQL, log_id, hmacs, start, end, as_of, after[0], after[1], limit)


async def filtered_access_events(
    conn: Connection,
    log_id: int,
    hmacs: list[bytes],
    start: datetime,
    end: datetime,
    as_of: int,
    after: tuple[datetime, int],
    limit: int,
    filters: FilterParams,
) -> list[tuple[int, datetime, str]]:
    """``access_events`` of the events that pass ``filters``."""
    return await fetch_page(
        conn, FILTERED_EVENTS_SQL, log_id, hmacs, start, end, as_of, after[0], after[1], limit, *filters
    )


async def daily_accesses(
    conn: Connection,
    log_id: int,
    hmacs: list[bytes],
    start: datetime,
    end: datetime,
    as_of: int,
    filters: FilterParams,
) -> list[tuple[str, datetime, int]]:
    """(system, UTC day, accesses) of the patient's events that pass ``filters``."""
    rows = await conn.fetch(DAILY_SQL, log_id, hmacs, start, end, as_of, *filters)
    return [(r["system_id"], r["day"], r["count"]) for r in rows]
