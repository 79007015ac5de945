"""Queries behind the FHIR AuditEvent search (ITI-81) and read.

A search page scans the read model in (occurred_at, seq) order through the
one index its most selective parameter names (the "driver"), at most a
budget of rows after the page's keyset position and below its snapshot
(``seq < as_of``); the domain filters the scanned facts by the other
parameters, then reads the JSON records and hashes of the rows it returns
only. Drivers:

* ``PATIENT_SCAN_SQL``: a patient's linked identifiers, one range scan of
  ``patient_events`` each (as the patient-access report);
* ``facts_scan_sql(columns)``: systems or actors, one range scan of
  ``event_facts_source`` / ``_destination`` / ``_actor`` per value;
* ``IDS_SCAN_SQL``: ``_id``, through ``event_ids``;
* ``DATE_SCAN_SQL``: the period alone, through ``event_facts_occurred``
  (migration 0014).

Parameters: ``$1`` the log, ``$2`` the subjects (where the driver has
them), then the period [start, end), the snapshot, the keyset position
(occurred_at, seq) and the scan budget. Every statement reads rows bounded
by its budget whatever plan PostgreSQL caches (tests/test_fhir_facade_plans.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from .session import Connection

_FACTS = """
CROSS JOIN LATERAL (
    SELECT f.event_type, f.action, f.purpose_of_use, f.outcome, f.source_system, f.destination_system, f.actor_id
    FROM event_facts f WHERE f.log_id = $1 AND f.seq = scan.seq LIMIT 1
) f
ORDER BY scan.occurred_at, scan.seq
"""

_SELECT = "SELECT scan.seq, scan.occurred_at, f.* FROM scan"

PATIENT_SCAN_SQL = (
    """
WITH scan AS (
    SELECT DISTINCT p.occurred_at, p.seq
    FROM unnest($2::bytea[]) AS h(id_hmac)
    CROSS JOIN LATERAL (
        SELECT pe.occurred_at, pe.seq FROM patient_events pe
        WHERE pe.log_id = $1 AND pe.id_hmac = h.id_hmac
          AND (pe.occurred_at, pe.seq) > ($6, $7) AND pe.occurred_at >= $3 AND pe.occurred_at < $4 AND pe.seq < $5
        ORDER BY pe.occurred_at, pe.seq
        LIMIT $8
    ) p
    ORDER BY p.occurred_at, p.seq
    LIMIT $8
)
"""
    + _SELECT
    + _FACTS
)

_FACTS_BRANCH = """
    SELECT p.occurred_at, p.seq
    FROM unnest($2::text[]) AS v(subject)
    CROSS JOIN LATERAL (
        SELECT x.occurred_at, x.seq FROM event_facts x
        WHERE x.log_id = $1 AND x.{col} = v.subject
          AND (x.occurred_at, x.seq) > ($6, $7) AND x.occurred_at >= $3 AND x.occurred_at < $4 AND x.seq < $5
        ORDER BY x.occurred_at, x.seq
        LIMIT $8
    ) p
"""

FACT_COLUMNS = ("source_system", "destination_system", "actor_id")


def facts_scan_sql(*columns: str) -> str:
    """The scan of the events whose ``columns`` (any of them) equal one of ``$2``."""
    assert columns and set(columns) <= set(FACT_COLUMNS)
    branches = " UNION ALL ".join(f"({_FACTS_BRANCH.format(col=c)})" for c in columns)
    return (
        f"WITH scan AS (SELECT DISTINCT u.occurred_at, u.seq FROM ({branches}) u "
        "ORDER BY u.occurred_at, u.seq LIMIT $8)\n" + _SELECT + _FACTS
    )


IDS_SCAN_SQL = (
    """
WITH scan AS (
    SELECT p.occurred_at, p.seq
    FROM unnest($2::uuid[]) AS i(event_id)
    CROSS JOIN LATERAL (SELECT n.seq FROM event_ids n WHERE n.log_id = $1 AND n.event_id = i.event_id LIMIT 1) n
    CROSS JOIN LATERAL (
        SELECT x.occurred_at, x.seq FROM event_facts x WHERE x.log_id = $1 AND x.seq = n.seq LIMIT 1
    ) p
    WHERE (p.occurred_at, p.seq) > ($6, $7) AND p.occurred_at >= $3 AND p.occurred_at < $4 AND p.seq < $5
    ORDER BY p.occurred_at, p.seq
    LIMIT $8
)
"""
    + _SELECT
    + _FACTS
)

DATE_SCAN_SQL = """
SELECT x.seq, x.occurred_at, x.event_type, x.action, x.purpose_of_use, x.outcome,
       x.source_system, x.destination_system, x.actor_id
FROM event_facts x
WHERE x.log_id = $1 AND (x.occurred_at, x.seq) > ($5, $6) AND x.occurred_at >= $2 AND x.occurred_at < $3
  AND x.seq < $4
ORDER BY x.occurred_at, x.seq
LIMIT $7
"""

RECORDS_SQL = """
SELECT s.seq, e.record, e.leaf_hash, e.chain_hash
FROM unnest($2::bigint[]) AS s(seq)
CROSS JOIN LATERAL (
    SELECT e.record, e.leaf_hash, e.chain_hash FROM events e WHERE e.log_id = $1 AND e.seq = s.seq LIMIT 1
) e
"""


@dataclass(frozen=True, slots=True)
class ScannedFact:
    """One scanned row of the read model: what the search filters on."""

    seq: int
    occurred_at: datetime
    event_type: str
    action: str
    purpose_of_use: str | None
    outcome: int
    source_system: str
    destination_system: str
    actor_id: str

    @property
    def position(self) -> tuple[datetime, int]:
        return (self.occurred_at, self.seq)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    seq: int
    record: str
    leaf_hash: bytes
    chain_hash: bytes


@dataclass(frozen=True, slots=True)
class Scan:
    """One scan: the period, the snapshot, where it starts, how many rows at most."""

    start: datetime
    end: datetime
    as_of: int
    after: tuple[datetime, int]
    budget: int


def _facts(rows: list[asyncpg.Record]) -> list[ScannedFact]:
    return [
        ScannedFact(
            r["seq"],
            r["occurred_at"],
            r["event_type"],
            r["action"],
            r["purpose_of_use"],
            r["outcome"],
            r["source_system"],
            r["destination_system"],
            r["actor_id"],
        )
        for r in rows
    ]


async def scan_patient(conn: Connection, log_id: int, hmacs: list[bytes], scan: Scan) -> list[ScannedFact]:
    rows = await conn.fetch(PATIENT_SCAN_SQL, log_id, hmacs, scan.start, scan.end, scan.as_of, *scan.after, scan.budget)
    return _facts(list(rows))


async def scan_facts(
    conn: Connection, log_id: int, columns: tuple[str, ...], subjects: list[str], scan: Scan
) -> list[ScannedFact]:
    sql = facts_scan_sql(*columns)
    rows = await conn.fetch(sql, log_id, subjects, scan.start, scan.end, scan.as_of, *scan.after, scan.budget)
    return _facts(list(rows))


async def scan_ids(conn: Connection, log_id: int, ids: list[UUID], scan: Scan) -> list[ScannedFact]:
    rows = await conn.fetch(IDS_SCAN_SQL, log_id, ids, scan.start, scan.end, scan.as_of, *scan.after, scan.budget)
    return _facts(list(rows))


async def scan_period(conn: Connection, log_id: int, scan: Scan) -> list[ScannedFact]:
    rows = await conn.fetch(DATE_SCAN_SQL, log_id, scan.start, scan.end, scan.as_of, *scan.after, scan.budget)
    return _facts(list(rows))


async def records(conn: Connection, log_id: int, seqs: list[int]) -> dict[int, StoredRecord]:
    """The stored records and hashes of ``seqs`` (a page's)."""
    rows = await conn.fetch(RECORDS_SQL, log_id, seqs)
    return {r["seq"]: StoredRecord(r["seq"], r["record"], bytes(r["leaf_hash"]), bytes(r["chain_hash"])) for r in rows}
