"""Queries behind ``revealed_by`` in the patient-access report: the runs of the
by-system and by-actor reports whose pages listed this patient.

Both statements read rows bounded by what they return: the patient's own
events (one range scan of ``patient_events`` per linked identifier, then
``event_facts`` by primary key), and, per system or actor those events name,
the newest report runs over it (``patient_events`` under the run's subject
key, then the record by primary key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .report_sql import PATIENT_HITS
from .session import Connection

TOUCHES_SQL = (
    "WITH"
    + PATIENT_HITS
    + """
SELECT hits.occurred_at, hits.seq, f.source_system, f.destination_system, f.actor_id
FROM hits
CROSS JOIN LATERAL (
    SELECT f.source_system, f.destination_system, f.actor_id FROM event_facts f
    WHERE f.log_id = $1 AND f.seq = hits.seq LIMIT 1
) f
"""
)

# Only the service's own events count as runs (source ``auditsvc``: no
# emitter may claim it), newest first, at most $5 per subject.
RUNS_SQL = """
SELECT r.seq, e.record
FROM unnest($2::bytea[]) AS h(id_hmac)
CROSS JOIN LATERAL (
    SELECT pe.seq FROM patient_events pe
    WHERE pe.log_id = $1 AND pe.id_hmac = h.id_hmac AND pe.seq < $3
    ORDER BY pe.occurred_at DESC, pe.seq DESC
    LIMIT $5
) r
CROSS JOIN LATERAL (
    SELECT f.seq FROM event_facts f WHERE f.log_id = $1 AND f.seq = r.seq AND f.source_system = $4 LIMIT 1
) f
CROSS JOIN LATERAL (SELECT e.record FROM events e WHERE e.log_id = $1 AND e.seq = r.seq LIMIT 1) e
"""


@dataclass(frozen=True)
class Touch:
    """One of the patient's events, as the report pages that list it see it."""

    occurred_at: datetime
    seq: int
    source: str
    destination: str
    actor_id: str


async def patient_touches(
    conn: Connection, log_id: int, hmacs: list[bytes], start: datetime, end: datetime, as_of: int
) -> list[Touch]:
    rows = await conn.fetch(TOUCHES_SQL, log_id, hmacs, start, end, as_of)
    return [Touch(r["occurred_at"], r["seq"], r["source_system"], r["destination_system"], r["actor_id"]) for r in rows]


async def report_runs(
    conn: Connection, log_id: int, subject_keys: list[bytes], as_of: int, service_system: str, per_subject: int
) -> list[tuple[int, str]]:
    """(seq, record) of the service's events recorded under ``subject_keys``."""
    rows = await conn.fetch(RUNS_SQL, log_id, subject_keys, as_of, service_system, per_subject)
    return [(r["seq"], r["record"]) for r in rows]
