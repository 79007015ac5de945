"""Queries behind the coverage report (domain/coverage.py) and its projection.

Every statement here reads rows bounded by the number of systems, emitters
and source -> destination pairs (times a constant ``k``), never by the
number of events, whatever plan PostgreSQL caches (tests/test_coverage_plans.py):

- the pairs, and so the systems, come from ``system_pairs`` (migration
  0008), one row per pair, written at ingest;
- the emitters, by a skip scan of ``event_facts_emitter``: one index probe
  per distinct emitter;
- each system's or emitter's last ``k`` events, by a backward range scan of
  ``event_facts_source`` and ``event_facts_destination`` (or
  ``event_facts_emitter``) with ``LIMIT k``: the last event, and the usual
  rate from the time those ``k`` events span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .readmodel import FACT_COLUMNS
from .session import Connection

_SEQ, _OCCURRED = FACT_COLUMNS.index("seq"), FACT_COLUMNS.index("occurred_at")
_SOURCE, _DESTINATION = FACT_COLUMNS.index("source_system"), FACT_COLUMNS.index("destination_system")
_LOG = FACT_COLUMNS.index("log_id")

PairKey = tuple[str, str, str]


def new_pairs(fact_rows: Sequence[tuple[Any, ...]], seen: Any) -> dict[PairKey, tuple[Any, ...]]:
    """The ``system_pairs`` rows for the pairs of ``fact_rows`` (in seq
    order) that ``seen`` (a SeenCache, or None) does not know committed:
    the first row of each pair."""
    out: dict[PairKey, tuple[Any, ...]] = {}
    for row in fact_rows:
        key = ("pair", row[_SOURCE], row[_DESTINATION])
        if key in out or (seen is not None and key in seen):
            continue
        out[key] = (row[_LOG], row[_SOURCE], row[_DESTINATION], row[_SEQ], row[_OCCURRED])
    return out


async def record_pairs(conn: Connection, pairs: dict[PairKey, tuple[Any, ...]]) -> None:
    """Insert the pairs not stored yet. Called under the append lock, after
    the events' rows: the first transaction to commit a pair holds its
    lowest seq. In key order, so that two writers never wait in a cycle."""
    rows = sorted(pairs.values(), key=lambda r: (r[1], r[2]))
    await conn.execute(
        "INSERT INTO system_pairs (log_id, source_system, destination_system, first_seq, first_occurred_at) "
        "SELECT $1, s, d, q, t FROM unnest($2::text[], $3::text[], $4::bigint[], $5::timestamptz[]) AS u(s, d, q, t) "
        "ORDER BY s, d ON CONFLICT DO NOTHING",
        rows[0][0],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
    )


PAIRS_SQL = """
SELECT source_system, destination_system, first_seq, first_occurred_at
FROM system_pairs WHERE log_id = $1 AND first_seq < $2
"""

# One probe per distinct emitter (a loose index scan): the next emitter
# after the last one found, until there is none.
EMITTERS_SQL = """
WITH RECURSIVE e(emitter) AS (
    (SELECT f.emitter FROM event_facts f WHERE f.log_id = $1 ORDER BY f.emitter LIMIT 1)
    UNION ALL
    SELECT (SELECT f.emitter FROM event_facts f WHERE f.log_id = $1 AND f.emitter > e.emitter
            ORDER BY f.emitter LIMIT 1)
    FROM e WHERE e.emitter IS NOT NULL
)
SELECT emitter FROM e WHERE emitter IS NOT NULL LIMIT $2
"""

# Per system: its last $4 events as source and as destination (each a
# backward range scan with LIMIT), the last $4 of both; seq < $3 (the
# report's snapshot). An event naming the system as both counts once.
SYSTEMS_LAST_SQL = """
SELECT x.system_id, k.n, k.last_at, k.kth_at, k.last_seq
FROM unnest($2::text[]) AS x(system_id)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, max(occurred_at) AS last_at, min(occurred_at) AS kth_at,
           (array_agg(seq ORDER BY occurred_at DESC, seq DESC))[1] AS last_seq
    FROM (
        SELECT DISTINCT occurred_at, seq FROM (
            (SELECT f.occurred_at, f.seq FROM event_facts f
             WHERE f.log_id = $1 AND f.source_system = x.system_id AND f.seq < $3
             ORDER BY f.occurred_at DESC, f.seq DESC LIMIT $4)
            UNION ALL
            (SELECT f.occurred_at, f.seq FROM event_facts f
             WHERE f.log_id = $1 AND f.destination_system = x.system_id AND f.seq < $3
             ORDER BY f.occurred_at DESC, f.seq DESC LIMIT $4)
        ) both_roles
        ORDER BY occurred_at DESC, seq DESC
        LIMIT $4
    ) last_k
) k
"""

EMITTERS_LAST_SQL = """
SELECT x.emitter, k.n, k.last_at, k.kth_at, k.last_seq
FROM unnest($2::text[]) AS x(emitter)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, max(occurred_at) AS last_at, min(occurred_at) AS kth_at,
           (array_agg(seq ORDER BY occurred_at DESC, seq DESC))[1] AS last_seq
    FROM (
        SELECT f.occurred_at, f.seq FROM event_facts f
        WHERE f.log_id = $1 AND f.emitter = x.emitter AND f.seq < $3
        ORDER BY f.occurred_at DESC, f.seq DESC LIMIT $4
    ) last_k
) k
"""


@dataclass(frozen=True)
class Pair:
    source: str
    destination: str
    first_seq: int
    first_occurred_at: datetime


@dataclass(frozen=True)
class LastEvents:
    """A system's or emitter's last ``n`` (at most k) events: the newest
    ``last_at`` (its ``last_seq``) and the oldest of them, ``kth_at``."""

    n: int
    last_at: datetime | None
    kth_at: datetime | None
    last_seq: int | None


async def pairs(conn: Connection, log_id: int, as_of: int) -> list[Pair]:
    rows = await conn.fetch(PAIRS_SQL, log_id, as_of)
    return [Pair(r["source_system"], r["destination_system"], r["first_seq"], r["first_occurred_at"]) for r in rows]


async def emitters(conn: Connection, log_id: int, limit: int) -> list[str]:
    return [r["emitter"] for r in await conn.fetch(EMITTERS_SQL, log_id, limit)]


def _last(rows: Sequence[Any], key: str) -> dict[str, LastEvents]:
    return {r[key]: LastEvents(int(r["n"]), r["last_at"], r["kth_at"], r["last_seq"]) for r in rows}


async def systems_last(conn: Connection, log_id: int, systems: list[str], as_of: int, k: int) -> dict[str, LastEvents]:
    return _last(await conn.fetch(SYSTEMS_LAST_SQL, log_id, systems, as_of, k), "system_id")


async def emitters_last(conn: Connection, log_id: int, names: list[str], as_of: int, k: int) -> dict[str, LastEvents]:
    return _last(await conn.fetch(EMITTERS_LAST_SQL, log_id, names, as_of, k), "emitter")


# --- verification of system_pairs --------------------------------------------

# A row whose first event does not name its pair (or is not there), among
# events below $2; events below $3 (the read model's backfill progress) must
# have their facts row.
PAIR_ROWS_DIFF = """
SELECT p.first_seq AS seq
FROM system_pairs p
LEFT JOIN event_facts f ON f.log_id = p.log_id AND f.seq = p.first_seq
WHERE p.log_id = $1 AND p.first_seq < $2
  AND ((f.seq IS NULL AND p.first_seq < $3)
       OR (f.seq IS NOT NULL AND (f.source_system, f.destination_system, f.occurred_at)
                                 IS DISTINCT FROM (p.source_system, p.destination_system, p.first_occurred_at)))
ORDER BY 1 LIMIT 1
"""

# A pair of the facts with no row, or whose row names a later first event.
PAIRS_MISSING = """
SELECT m.first AS seq
FROM (
    SELECT source_system, destination_system, min(seq) AS first
    FROM event_facts WHERE log_id = $1 AND seq < $2 GROUP BY 1, 2
) m
LEFT JOIN system_pairs p
    ON p.log_id = $1 AND p.source_system = m.source_system AND p.destination_system = m.destination_system
WHERE p.first_seq IS NULL OR p.first_seq > m.first
ORDER BY 1 LIMIT 1
"""


async def first_pair_mismatch(conn: Connection, log_id: int, size: int, covered: int) -> tuple[int, str] | None:
    """The lowest seq at which ``system_pairs`` disagrees with ``event_facts``."""
    found = []
    wrong = await conn.fetchval(PAIR_ROWS_DIFF, log_id, size, covered)
    if wrong is not None:
        found.append((int(wrong), "the system pairs name an event that does not carry that pair"))
    missing = await conn.fetchval(PAIRS_MISSING, log_id, size)
    if missing is not None:
        found.append((int(missing), "the system pairs lack this event's pair, or name a later first event"))
    return min(found, default=None)
