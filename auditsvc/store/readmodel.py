"""The read model reports use: ``event_facts`` and ``patient_events`` (migration 0006).

Derived from the records and written in the append transaction
(store/append.py); the records stay the evidence. The same derivation is
written twice on purpose: in Python (``event_facts``, from an event's JSON,
at ingest and by the backfill) and in SQL (``RECORD_FACTS``, from a stored
record, for verification), so that ``verify`` compares the table with the
records by an independent route.

Rows stored before migration 0006 are filled in by ``backfill``: batches of
``seq`` in their own transactions, each recording its progress in
``read_model_backfill`` (so an interrupted run resumes where it stopped), and
only the last batch, the tail up to the head, under the append lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from .events import committed_size
from .locks import APPEND_LOCK_CLASS, xact_lock

# The backfill takes the append lock only for the last rows, at most this
# many (about 0.1 s of work), chasing the head without it until then.
TAIL_ROWS = 2_000

# Session advisory lock class for the backfill: one runner per log at a time.
BACKFILL_LOCK_CLASS = 0x52454144  # "READ"

FACT_COLUMNS = (
    "log_id",
    "seq",
    "occurred_at",
    "outcome",
    "break_glass",
    "event_type",
    "action",
    "purpose_of_use",
    "source_system",
    "destination_system",
    "actor_id",
    "actor_type",
    "actor_role",
    "actor_name",
    "emitter",
    "data_elements",
)
PATIENT_COLUMNS = ("log_id", "id_hmac", "occurred_at", "seq")

# An access under emergency override: the break-glass event type, the
# emergency-treatment purpose of use, or an explicit attribute.
BREAK_GLASS_EVENT_TYPE = "break-glass"
BREAK_GLASS_PURPOSE = "ETREAT"


def event_facts(event: Mapping[str, Any], emitter: str) -> tuple[Any, ...]:
    """The ``event_facts`` columns after ``log_id, seq, occurred_at`` for an
    event's JSON (as stored in its record) sent by ``emitter``."""
    actor = event["actor"]
    purpose = event.get("purpose_of_use")
    attributes = event.get("attributes") or {}
    break_glass = (
        event["event_type"] == BREAK_GLASS_EVENT_TYPE
        or purpose == BREAK_GLASS_PURPOSE
        or attributes.get("break_glass") is True
    )
    return (
        int(event["outcome"]),
        break_glass,
        event["event_type"],
        event["action"],
        purpose,
        event["source"]["system_id"],
        event["destination"]["system_id"],
        actor["id"],
        actor["type"],
        actor.get("role"),
        actor.get("name"),
        emitter,
        list(event.get("data_elements") or ()),
    )


# The same columns, from a stored record ``r`` (jsonb), in FACT_COLUMNS order after occurred_at.
RECORD_FACTS = """
(r->>'outcome')::smallint,
(r->>'event_type' = 'break-glass' OR coalesce(r->>'purpose_of_use' = 'ETREAT', false)
    OR coalesce(r->'attributes'->'break_glass' = 'true'::jsonb, false)),
r->>'event_type',
r->>'action',
r->>'purpose_of_use',
r->'source'->>'system_id',
r->'destination'->>'system_id',
r->'actor'->>'id',
r->'actor'->>'type',
r->'actor'->>'role',
r->'actor'->>'name',
r->>'emitter',
ARRAY(SELECT jsonb_array_elements_text(CASE jsonb_typeof(r->'data_elements') WHEN 'array' THEN r->'data_elements' END))
"""

_FACTS = ", ".join(FACT_COLUMNS[3:])


@dataclass(frozen=True)
class ReadModelMismatch:
    seq: int
    detail: str


# Rows of both sides for seq in [$2, $3) (stored rows: up to $5, so that
# the last range also catches rows past the log's end), matched by seq; the
# first that differs. Only events below the backfill's progress ($4, the
# size when complete) must have a row; any row that exists must match.
# event_ids (migration 0010; filled for every event, no backfill) rides on
# the same read of the records: each event has exactly its own row.
_FACTS_DIFF = f"""
WITH expected AS (
    SELECT seq, event_id, occurred_at, ROW({RECORD_FACTS}) AS x
    -- OFFSET 0: not pulled up, so each record is parsed once, not once per field
    FROM (
        SELECT seq, event_id, occurred_at, record::jsonb AS r FROM events
        WHERE log_id = $1 AND seq >= $2 AND seq < $3 OFFSET 0
    ) rec
), stored AS (
    SELECT seq, occurred_at, ROW({_FACTS}) AS x FROM event_facts WHERE log_id = $1 AND seq >= $2 AND seq < $5
), ids AS (
    SELECT seq, event_id FROM event_ids WHERE log_id = $1 AND seq >= $2 AND seq < $5
)
SELECT coalesce(e.seq, s.seq, i.seq) AS seq,
       CASE WHEN e.seq IS NULL AND s.seq IS NOT NULL THEN 'orphan'
            WHEN e.seq IS NOT NULL AND s.seq IS NULL AND e.seq < $4 THEN 'missing'
            WHEN e.seq IS NOT NULL AND s.seq IS NOT NULL
                 AND (e.occurred_at, e.x) IS DISTINCT FROM (s.occurred_at, s.x) THEN 'differs'
            WHEN i.seq IS NULL THEN 'id_missing'
            ELSE 'id_orphan' END AS kind
FROM expected e FULL JOIN stored s ON e.seq = s.seq FULL JOIN ids i ON i.seq = e.seq AND i.event_id = e.event_id
WHERE (e.seq IS NULL AND s.seq IS NOT NULL)
   OR (s.seq IS NULL AND (e.seq < $4))
   OR (s.seq IS NOT NULL AND e.seq IS NOT NULL AND (e.occurred_at, e.x) IS DISTINCT FROM (s.occurred_at, s.x))
   OR ((e.seq IS NULL) <> (i.seq IS NULL))
ORDER BY 1 LIMIT 1
"""
_FACTS_DETAIL = {
    "orphan": "the report facts have a row naming an event that is not in the log",
    "missing": "the report facts have no row for this event",
    "differs": "the report facts differ from the record",
    "id_missing": "the event id index (event_ids) has no row for this event",
    "id_orphan": "the event id index (event_ids) has a row naming no event of the log by that id and seq",
}
_BEYOND = 2**62  # past any seq

# The records are parsed by the server; past this many, in ranges on as many
# connections (on the verifying snapshot) as verification has workers.
PARALLEL_MIN_ROWS = 100_000

# The patient index against the lookup index (event_identifiers, which
# verification has already checked against the records) joined to events.
_PATIENT_DIFF = """
WITH expected AS (
    SELECT ei.id_hmac, e.occurred_at, e.seq
    FROM event_identifiers ei JOIN events e ON e.log_id = ei.log_id AND e.event_id = ei.event_id
    WHERE ei.log_id = $1 AND e.seq < $2
), stored AS (
    SELECT id_hmac, occurred_at, seq FROM patient_events WHERE log_id = $1
)
SELECT coalesce(e.seq, s.seq) AS seq, e.seq IS NULL AS orphan
FROM expected e FULL JOIN stored s ON e.id_hmac = s.id_hmac AND e.seq = s.seq AND e.occurred_at = s.occurred_at
WHERE e.seq IS NULL OR (s.seq IS NULL AND e.seq < $3)
ORDER BY 1 LIMIT 1
"""


BACKFILL_STATE_SQL = (
    "SELECT count(*) AS n, coalesce(bool_or(complete), false) AS done, coalesce(max(upto), 0) AS upto "
    "FROM read_model_backfill WHERE log_id = $1"
)


async def backfill_state(conn: asyncpg.Connection, log_id: int) -> tuple[bool, int]:
    """(complete, progress): ``progress`` is the ``seq`` below which a
    pending backfill has filled the read model. A log the migration found
    empty has no rows here and is complete."""
    row = await conn.fetchrow(BACKFILL_STATE_SQL, log_id)
    assert row is not None
    return (row["n"] == 0 or bool(row["done"])), int(row["upto"])


async def _snapshot_connection(dsn: str, snapshot: str) -> asyncpg.Connection:
    if not snapshot or any(c not in "0123456789ABCDEFabcdef-" for c in snapshot):
        raise ValueError("unexpected snapshot id from pg_export_snapshot()")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    except BaseException:
        await conn.close()
        raise
    return conn


async def first_mismatch(
    conn: asyncpg.Connection, log_id: int, size: int, dsn: str | None = None, workers: int = 1
) -> ReadModelMismatch | None:
    """The first ``seq`` where the read model disagrees with the records
    (and, for ``patient_events``, with the lookup index), in ``conn``'s
    snapshot (a repeatable-read transaction). With ``dsn`` and ``workers > 1``,
    a large log's records are compared in ``workers`` ranges on as many
    connections at once, on the same snapshot."""
    complete, progress = await backfill_state(conn, log_id)
    covered = size if complete else progress
    ranges = 1 if dsn is None or size < PARALLEL_MIN_ROWS else max(1, workers)
    bounds = [(size * i // ranges, size * (i + 1) // ranges) for i in range(ranges)]
    extra: list[asyncpg.Connection] = []
    try:
        if ranges > 1:
            assert dsn is not None
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            extra = list(await asyncio.gather(*(_snapshot_connection(dsn, snapshot) for _ in bounds)))
        on = extra or [conn]
        facts_rows = [
            on[i].fetchrow(_FACTS_DIFF, log_id, a, b, covered, b if b < size else _BEYOND)
            for i, (a, b) in enumerate(bounds)
        ]
        if extra:  # the patient index on the main connection meanwhile
            *found, patients = await asyncio.gather(*facts_rows, conn.fetchrow(_PATIENT_DIFF, log_id, size, covered))
        else:
            async with conn.transaction():  # a savepoint: a record the SQL cannot read must not end the snapshot
                found = [await facts_rows[0]]
            patients = await conn.fetchrow(_PATIENT_DIFF, log_id, size, covered)
    finally:
        for c in extra:
            await c.close()
    mismatches: list[ReadModelMismatch] = []
    row = min((r for r in found if r is not None), key=lambda r: int(r["seq"]), default=None)
    if row is not None:
        mismatches.append(ReadModelMismatch(int(row["seq"]), _FACTS_DETAIL[row["kind"]]))
    if patients is not None:
        detail = (
            "the patient report index has a row the records do not name"
            if patients["orphan"]
            else "the patient report index lacks an identifier of this event"
        )
        mismatches.append(ReadModelMismatch(int(patients["seq"]), detail))
    return min(mismatches, key=lambda m: m.seq, default=None)


def _rows_for(
    log_id: int, rows: Sequence[Any], skip: set[int], lookup_keys: Callable[[dict[str, Any]], list[bytes]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    facts: list[tuple[Any, ...]] = []
    patients: list[tuple[Any, ...]] = []
    for row in rows:
        seq, occurred_at = int(row["seq"]), row["occurred_at"]
        if seq in skip:
            continue
        record = orjson.loads(row["record"])
        facts.append((log_id, seq, occurred_at, *event_facts(record, record["emitter"])))
        patients.extend((log_id, h, occurred_at, seq) for h in lookup_keys(record))
    return facts, patients


async def _fill(
    conn: asyncpg.Connection,
    log_id: int,
    start: int,
    stop: int,
    lookup_keys: Callable[[dict[str, Any]], list[bytes]],
) -> None:
    """Read-model rows for events ``[start, stop)`` that have none (rows the
    service wrote itself are there already, committed with their event)."""
    rows = await conn.fetch(
        "SELECT seq, occurred_at, record FROM events WHERE log_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
        log_id,
        start,
        stop,
    )
    skip = {
        int(r["seq"])
        for r in await conn.fetch(
            "SELECT seq FROM event_facts WHERE log_id = $1 AND seq >= $2 AND seq < $3", log_id, start, stop
        )
    }
    facts, patients = _rows_for(log_id, rows, skip, lookup_keys)
    if facts:
        await conn.copy_records_to_table("event_facts", records=facts, columns=FACT_COLUMNS)
    if patients:
        await conn.copy_records_to_table("patient_events", records=patients, columns=PATIENT_COLUMNS)


async def backfill(
    conn: asyncpg.Connection,
    log_id: int,
    lookup_keys: Callable[[dict[str, Any]], list[bytes]],
    *,
    batch_rows: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
    max_batches: int | None = None,
) -> bool:
    """Fill the read model for the rows stored before it existed; True once
    complete (at once if nothing is pending), False if another process holds
    the backfill or ``max_batches`` ran out first (the next call resumes).

    ``lookup_keys(record)``: the patient lookup keys a record names (format-1
    records need the server's identifier key for them)."""
    complete, done = await backfill_state(conn, log_id)
    if complete:
        return True
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", BACKFILL_LOCK_CLASS, log_id):
        return False
    try:
        complete, done = await backfill_state(conn, log_id)  # another runner may have finished meanwhile
        batches = 0
        while not complete:
            head = await committed_size(conn, log_id)
            if head - done <= min(batch_rows, TAIL_ROWS):
                # The tail, under the append lock: nothing is appended meanwhile,
                # so ``complete`` is true of every event stored when it commits.
                async with conn.transaction():
                    await xact_lock(conn, APPEND_LOCK_CLASS, log_id)
                    head = await committed_size(conn, log_id)
                    await _fill(conn, log_id, done, head, lookup_keys)
                    await conn.execute(
                        "INSERT INTO read_model_backfill (log_id, upto, complete) VALUES ($1, $2, true)", log_id, head
                    )
                done, complete = head, True
            else:
                if max_batches is not None and batches >= max_batches:
                    return False
                stop = min(done + batch_rows, head)
                async with conn.transaction():
                    await _fill(conn, log_id, done, stop, lookup_keys)
                    await conn.execute(
                        "INSERT INTO read_model_backfill (log_id, upto, complete) VALUES ($1, $2, false)", log_id, stop
                    )
                done = stop
                batches += 1
            if progress is not None:
                progress(done, head)
        return True
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", BACKFILL_LOCK_CLASS, log_id)


async def pending_logs(conn: asyncpg.Connection) -> list[int]:
    """Logs whose read model still needs a backfill."""
    rows = await conn.fetch(
        "SELECT log_id FROM read_model_backfill GROUP BY log_id HAVING NOT bool_or(complete) ORDER BY log_id"
    )
    return [int(r["log_id"]) for r in rows]
