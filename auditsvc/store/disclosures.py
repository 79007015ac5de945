"""Queries behind the accounting of disclosures (domain/disclosures.py).

Both read one patient's rows (or one recipient's suspension records) through
the read model, as the patient-access report does (store/reports.py): per
keyed identifier hash, one range scan of ``patient_events``; each event's
facts by primary key in a LATERAL subquery with LIMIT (never a join over
the whole table, whatever plan PostgreSQL caches); the JSON record only of
the rows kept. So the rows read are bounded by the patient's events (or by
the suspensions recorded for a recipient), never by the size of the log:
tests/test_disclosures_plans.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .report_sql import PAGE_RECORDS, PATIENT_HITS
from .session import Connection

# The patient's events of the given types ($6) in [$3, $4], below the
# snapshot ($5), with their records; source system optionally fixed ($7:
# NULL for any) so that the service's own events are told from an
# emitter's.
TYPED_EVENTS_SQL = (
    "WITH"
    + PATIENT_HITS
    + """,
page AS MATERIALIZED (
    SELECT f.seq, f.occurred_at
    FROM hits
    CROSS JOIN LATERAL (
        SELECT f.seq, f.occurred_at, f.event_type, f.source_system
        FROM event_facts f WHERE f.log_id = $1 AND f.seq = hits.seq LIMIT 1
    ) f
    WHERE f.event_type = ANY($6::text[]) AND ($7::text IS NULL OR f.source_system = $7::text)
)"""
    + PAGE_RECORDS
)


@dataclass(frozen=True)
class StoredRecord:
    seq: int
    occurred_at: datetime
    record: str  # the stored JSON record, decoded by the caller


async def typed_events(
    conn: Connection,
    log_id: int,
    hmacs: list[bytes],
    start: datetime,
    end: datetime,
    as_of: int,
    event_types: list[str],
    source_system: str | None = None,
) -> list[StoredRecord]:
    """The events of ``event_types`` recorded under any of ``hmacs`` with
    ``start <= occurred_at <= end`` and ``seq < as_of``, in time order."""
    rows = await conn.fetch(TYPED_EVENTS_SQL, log_id, hmacs, start, end, as_of, event_types, source_system)
    return [StoredRecord(r["seq"], r["occurred_at"], r["record"]) for r in rows]


# The stored records of listed events, by primary key: the integrity
# statement recomputes each one's leaf hash from what is stored.
RECORDS_BY_SEQ_SQL = """
SELECT s.seq, e.record
FROM unnest($2::bigint[]) AS s(seq)
CROSS JOIN LATERAL (SELECT e.record FROM events e WHERE e.log_id = $1 AND e.seq = s.seq LIMIT 1) e
ORDER BY s.seq
"""


async def records_by_seq(conn: Connection, log_id: int, seqs: list[int]) -> dict[int, str]:
    rows = await conn.fetch(RECORDS_BY_SEQ_SQL, log_id, seqs)
    return {int(r["seq"]): r["record"] for r in rows}
