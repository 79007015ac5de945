"""Queries behind the patient-access report.

A patient is found by the keyed hash of one identifier; the identifiers
linked to it (seen together in some event, transitively) are walked through
``identifier_links``; events are found through ``event_identifiers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# A component this large means identifiers are being linked wrongly (a
# placeholder value such as "UNKNOWN" shared by many patients); stop walking.
MAX_LINKED_IDENTIFIERS = 1000

_COMPONENT = """
WITH RECURSIVE component(h) AS (
    SELECT $2::bytea
    UNION
    SELECT l.b FROM identifier_links l JOIN component c ON l.log_id = $1 AND l.a = c.h
)
SELECT h FROM component LIMIT $3
"""

_MATCHED = """
ev AS MATERIALIZED (
    SELECT e.seq, e.occurred_at, e.record
    FROM events e
    WHERE e.log_id = $1
      AND e.event_id IN (SELECT event_id FROM event_identifiers WHERE log_id = $1 AND id_hmac = ANY($2::bytea[]))
      AND e.occurred_at >= $3 AND e.occurred_at <= $4 AND e.seq < $5
)
"""

_SYSTEMS = (
    "WITH "
    + _MATCHED
    + """,
parsed AS (SELECT seq, occurred_at, record::jsonb AS r FROM ev),
sys AS (
    SELECT r->'source'->>'system_id' AS system_id, occurred_at, r,
           true AS as_source,
           (r->'source'->>'system_id') = (r->'destination'->>'system_id') AS as_destination
    FROM parsed
    UNION ALL
    SELECT r->'destination'->>'system_id', occurred_at, r, false, true
    FROM parsed WHERE (r->'source'->>'system_id') <> (r->'destination'->>'system_id')
)
SELECT s.system_id,
       count(*) AS count,
       count(*) FILTER (WHERE s.as_source) AS as_source,
       count(*) FILTER (WHERE s.as_destination) AS as_destination,
       min(s.occurred_at) AS first_access,
       max(s.occurred_at) AS last_access,
       array_agg(DISTINCT s.r->>'action' ORDER BY s.r->>'action') AS actions,
       (SELECT array_agg(DISTINCT d ORDER BY d)
          FROM sys s2, jsonb_array_elements_text(s2.r->'data_elements') d
         WHERE s2.system_id = s.system_id) AS data_elements,
       (SELECT jsonb_agg(DISTINCT s3.r->'actor')
          FROM sys s3 WHERE s3.system_id = s.system_id) AS actors
FROM sys s
GROUP BY s.system_id
ORDER BY count DESC, s.system_id
"""
)

_EVENTS = (
    "WITH "
    + _MATCHED
    + """
SELECT seq, occurred_at, record FROM ev
WHERE (occurred_at, seq) > ($6, $7)
ORDER BY occurred_at, seq
LIMIT $8
"""
)


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


async def linked_identifier_hmacs(conn: asyncpg.Connection, log_id: int, id_hmac: bytes) -> list[bytes]:
    rows = await conn.fetch(_COMPONENT, log_id, id_hmac, MAX_LINKED_IDENTIFIERS)
    return [bytes(r["h"]) for r in rows]


async def identifiers_for(
    conn: asyncpg.Connection, log_id: int, hmacs: list[bytes]
) -> list[tuple[str, str | None, str | None]]:
    """(system, value in clear, sealed value): one of the two values is set
    (rows stored before identifiers were encrypted hold the clear one)."""
    rows = await conn.fetch(
        "SELECT system, value, value_enc FROM patient_identifiers WHERE log_id = $1 AND id_hmac = ANY($2::bytea[])",
        log_id,
        hmacs,
    )
    return [(r["system"], r["value"], r["value_enc"]) for r in rows]


async def tree_size(conn: asyncpg.Connection, log_id: int) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(seq) + 1, 0) FROM events WHERE log_id = $1", log_id))


async def system_accesses(
    conn: asyncpg.Connection, log_id: int, hmacs: list[bytes], start: datetime, end: datetime, as_of: int
) -> list[SystemAccess]:
    """Per-system rows over events with ``seq < as_of`` (the report's snapshot)."""
    rows = await conn.fetch(_SYSTEMS, log_id, hmacs, start, end, as_of)
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
    conn: asyncpg.Connection,
    log_id: int,
    hmacs: list[bytes],
    start: datetime,
    end: datetime,
    as_of: int,
    after: tuple[datetime, int],
    limit: int,
) -> list[tuple[int, datetime, str]]:
    """Events in (occurred_at, seq) order after the keyset position ``after``."""
    rows = await conn.fetch(_EVENTS, log_id, hmacs, start, end, as_of, after[0], after[1], limit)
    return [(r["seq"], r["occurred_at"], r["record"]) for r in rows]
