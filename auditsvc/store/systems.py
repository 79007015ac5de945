"""Queries behind the system registry (domain/systems.py).

A registry entry is an event in the chain (source ``auditsvc``, destination
``auditsvc:system-registry``, event type ``system-registry-change``) whose
subject is the system, ``urn:auditsvc:system|<system_id>``. There is no
table of its own: the read model already indexes those events, so

- one system's entry is one range scan of ``patient_events`` for the keyed
  hash of its subject (the system's registry history), keeping the newest
  event that the service itself wrote (checked in ``event_facts``);
- the whole registry is one range scan of ``event_facts_destination`` for
  the registry's destination (the registry's history).

Both tables are checked against the records by ``verify``
(store/readmodel.py), so an edit made in the database, even by a superuser,
is caught there: nothing here can be changed without breaking the chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from .session import Connection

# The newest registry event per subject hash, then its record only. The
# subject's history is read through the primary key (its order, OFFSET 0 as
# a fence): ordered by seq alone, PostgreSQL would rather walk the whole
# (log_id, seq) index backwards, filtering on the hash.
ENTRIES_SQL = """
SELECT h.i, latest.seq, e.record
FROM unnest($2::bytea[]) WITH ORDINALITY AS h(id_hmac, i)
CROSS JOIN LATERAL (
    SELECT hist.seq FROM (
        SELECT pe.seq FROM patient_events pe
        WHERE pe.log_id = $1 AND pe.id_hmac = h.id_hmac
        ORDER BY pe.occurred_at DESC, pe.seq DESC
        OFFSET 0
    ) hist
    CROSS JOIN LATERAL (
        SELECT 1 FROM event_facts f
        WHERE f.log_id = $1 AND f.seq = hist.seq
          AND f.source_system = $3 AND f.destination_system = $4 AND f.event_type = $5
        LIMIT 1
    ) f
    ORDER BY hist.seq DESC
    LIMIT 1
) latest
CROSS JOIN LATERAL (SELECT e.record FROM events e WHERE e.log_id = $1 AND e.seq = latest.seq LIMIT 1) e
"""

# Every registry event, in seq order (the registry's history): the caller
# keeps the newest per system.
HISTORY_SQL = """
SELECT f.seq, e.record
FROM event_facts f
CROSS JOIN LATERAL (SELECT e.record FROM events e WHERE e.log_id = $1 AND e.seq = f.seq LIMIT 1) e
WHERE f.log_id = $1 AND f.destination_system = $3 AND f.source_system = $2 AND f.event_type = $4
ORDER BY f.seq
"""


@dataclass(frozen=True)
class RegistryKind:
    """How registry events are told apart from every other event."""

    source: str
    destination: str
    event_type: str


async def newest_entries(
    conn: Connection, log_id: int, subject_hmacs: list[bytes], kind: RegistryKind
) -> dict[int, tuple[int, str]]:
    """For each subject hash (by its index in ``subject_hmacs``) that has a
    registry event: (seq, record JSON) of the newest one."""
    rows = await conn.fetch(ENTRIES_SQL, log_id, subject_hmacs, kind.source, kind.destination, kind.event_type)
    return {int(r["i"]) - 1: (int(r["seq"]), r["record"]) for r in rows}


async def registry_history(conn: Connection, log_id: int, kind: RegistryKind) -> list[tuple[int, str]]:
    """(seq, record JSON) of every registry event, oldest first."""
    rows = await conn.fetch(HISTORY_SQL, log_id, kind.source, kind.destination, kind.event_type)
    return [(int(r["seq"]), r["record"]) for r in rows]
