"""The flow map's rollup (migration 0015): written at append, read by the
flow and BAA reports, checked by verify.

Costs, whatever plan PostgreSQL caches (tests/test_flows_plans.py):

- a period's flows read the ``flow_days`` rows of its days (one per day,
  pair, event type, purpose and action), by the primary key's range on
  ``day``: bounded by pairs x days x kinds, never by the events;
- its data elements, the ``flow_day_elements`` rows of its days;
- the patients a gap reached, one pair's events in the gap's days
  (``event_facts_pair``), each with its patient keys (``patient_events_seq``):
  bounded by that pair's events in those days, not by the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from .readmodel import FACT_COLUMNS
from .session import Connection

_LOG, _SEQ, _OCCURRED = (FACT_COLUMNS.index(c) for c in ("log_id", "seq", "occurred_at"))
_TYPE, _ACTION, _PURPOSE = (FACT_COLUMNS.index(c) for c in ("event_type", "action", "purpose_of_use"))
_SOURCE, _DESTINATION = FACT_COLUMNS.index("source_system"), FACT_COLUMNS.index("destination_system")
_ELEMENTS = FACT_COLUMNS.index("data_elements")

FlowKey = tuple[date, str, str, str, str, str]  # day, source, destination, event type, purpose ('' none), action
ElementKey = tuple[str, date, str, str, str]  # "flow-element", day, source, destination, element


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


@dataclass
class FlowDelta:
    """What one append adds to the rollup."""

    counts: dict[FlowKey, list[Any]]  # key -> [events, first_at, last_at]
    elements: dict[ElementKey, None]


def flow_delta(fact_rows: Sequence[tuple[Any, ...]], seen: Any) -> FlowDelta:
    """The rollup rows of ``fact_rows``; element rows that ``seen`` (a
    SeenCache, or None) knows committed are left out."""
    counts: dict[FlowKey, list[Any]] = {}
    elements: dict[ElementKey, None] = {}
    for row in fact_rows:
        at = row[_OCCURRED]
        day = utc_day(at)
        key = (day, row[_SOURCE], row[_DESTINATION], row[_TYPE], row[_PURPOSE] or "", row[_ACTION])
        found = counts.get(key)
        if found is None:
            counts[key] = [1, at, at]
        else:
            found[0] += 1
            found[1] = min(found[1], at)
            found[2] = max(found[2], at)
        for element in row[_ELEMENTS]:
            ekey = ("flow-element", day, row[_SOURCE], row[_DESTINATION], element)
            if seen is None or ekey not in seen:
                elements[ekey] = None
    return FlowDelta(counts, elements)


async def record_flows(conn: Connection, log_id: int, delta: FlowDelta) -> None:
    """Add ``delta`` to the rollup. Called under the append lock; rows in key
    order all the same, so that no two writers could wait in a cycle."""
    if delta.counts:
        keys = sorted(delta.counts)
        await conn.execute(
            "INSERT INTO flow_days AS f (log_id, day, source_system, destination_system, event_type, "
            "purpose_of_use, action, events, first_at, last_at) "
            "SELECT $1, d, s, t, y, p, a, n, fa, la FROM unnest($2::date[], $3::text[], $4::text[], "
            "$5::text[], $6::text[], $7::text[], $8::bigint[], $9::timestamptz[], $10::timestamptz[]) "
            "AS u(d, s, t, y, p, a, n, fa, la) "
            "ON CONFLICT (log_id, day, source_system, destination_system, event_type, purpose_of_use, action) "
            "DO UPDATE SET events = f.events + excluded.events, first_at = least(f.first_at, excluded.first_at), "
            "last_at = greatest(f.last_at, excluded.last_at)",
            log_id,
            *([k[i] for k in keys] for i in range(6)),
            [delta.counts[k][0] for k in keys],
            [delta.counts[k][1] for k in keys],
            [delta.counts[k][2] for k in keys],
        )
    if delta.elements:
        ekeys = sorted(delta.elements)
        await conn.execute(
            "INSERT INTO flow_day_elements (log_id, day, source_system, destination_system, data_element) "
            "SELECT $1, d, s, t, e FROM unnest($2::date[], $3::text[], $4::text[], $5::text[]) AS u(d, s, t, e) "
            "ON CONFLICT DO NOTHING",
            log_id,
            *([k[i] for k in ekeys] for i in range(1, 5)),
        )


# --- reads -------------------------------------------------------------------

FLOW_DAYS_SQL = """
SELECT day, source_system, destination_system, event_type, purpose_of_use, action, events, first_at, last_at
FROM flow_days WHERE log_id = $1 AND day >= $2 AND day <= $3
"""

ELEMENTS_SQL = """
SELECT DISTINCT source_system, destination_system, data_element
FROM flow_day_elements WHERE log_id = $1 AND day >= $2 AND day <= $3
"""

# One pair's events in each [a, b) range (at most $6 of them), each counted
# under its smallest patient key (an event names 1..20 identifiers of one patient).
PATIENTS_SQL = """
SELECT count(DISTINCT k.key) AS patients, count(*) AS events
FROM (
    SELECT ev.seq
    FROM unnest($4::timestamptz[], $5::timestamptz[]) AS r(a, b)
    CROSS JOIN LATERAL (
        SELECT f.seq FROM event_facts f
        WHERE f.log_id = $1 AND f.source_system = $2 AND f.destination_system = $3
          AND f.occurred_at >= r.a AND f.occurred_at < r.b
        OFFSET 0  -- a scan per range, not the pair's whole history filtered
    ) ev
    LIMIT $6
) ev
CROSS JOIN LATERAL (
    SELECT pe.id_hmac AS key FROM patient_events pe WHERE pe.log_id = $1 AND pe.seq = ev.seq
    ORDER BY pe.id_hmac LIMIT 1
) k
"""


@dataclass(frozen=True)
class FlowDay:
    day: date
    source: str
    destination: str
    event_type: str
    purpose: str | None
    action: str
    events: int
    first_at: datetime
    last_at: datetime


async def flow_days(conn: Connection, log_id: int, first: date, last: date) -> list[FlowDay]:
    rows = await conn.fetch(FLOW_DAYS_SQL, log_id, first, last)
    return [
        FlowDay(
            r["day"],
            r["source_system"],
            r["destination_system"],
            r["event_type"],
            r["purpose_of_use"] or None,
            r["action"],
            int(r["events"]),
            r["first_at"],
            r["last_at"],
        )
        for r in rows
    ]


async def flow_elements(conn: Connection, log_id: int, first: date, last: date) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for r in await conn.fetch(ELEMENTS_SQL, log_id, first, last):
        out.setdefault((r["source_system"], r["destination_system"]), []).append(r["data_element"])
    return {k: sorted(v) for k, v in out.items()}


async def pair_patients(
    conn: Connection,
    log_id: int,
    source: str,
    destination: str,
    ranges: Sequence[tuple[datetime, datetime]],
    max_events: int,
) -> tuple[int, bool]:
    """Distinct patients among the pair's events in the ``[start, end)``
    ranges, and whether the count is exact: it reads at most ``max_events``
    events, and past them is a lower bound."""
    if not ranges:
        return 0, True
    row = await conn.fetchrow(
        PATIENTS_SQL, log_id, source, destination, [a for a, _ in ranges], [b for _, b in ranges], max_events
    )
    assert row is not None
    return int(row["patients"]), int(row["events"]) < max_events


# --- verification --------------------------------------------------------------

# Rollup rows against the facts of events below $2: the first that differs.
FLOW_DAYS_DIFF = """
WITH expected AS (
    SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, source_system, destination_system, event_type,
           coalesce(purpose_of_use, '') AS purpose_of_use, action,
           count(*) AS events, min(occurred_at) AS first_at, max(occurred_at) AS last_at, min(seq) AS first_seq
    FROM event_facts WHERE log_id = $1 AND seq < $2
    GROUP BY 1, 2, 3, 4, 5, 6
), stored AS (
    SELECT day, source_system, destination_system, event_type, purpose_of_use, action, events, first_at, last_at
    FROM flow_days WHERE log_id = $1
)
SELECT coalesce(e.first_seq, 0) AS seq, coalesce(e.day, s.day) AS day,
       coalesce(e.source_system, s.source_system) AS source_system,
       coalesce(e.destination_system, s.destination_system) AS destination_system,
       CASE WHEN e.day IS NULL THEN 'orphan' WHEN s.day IS NULL THEN 'missing' ELSE 'differs' END AS kind
FROM expected e FULL JOIN stored s USING (day, source_system, destination_system, event_type, purpose_of_use, action)
WHERE e.day IS NULL OR s.day IS NULL
   OR (e.events, e.first_at, e.last_at) IS DISTINCT FROM (s.events, s.first_at, s.last_at)
ORDER BY 1 LIMIT 1
"""

FLOW_ELEMENTS_DIFF = """
WITH expected AS (
    SELECT (f.occurred_at AT TIME ZONE 'UTC')::date AS day, f.source_system, f.destination_system,
           el AS data_element, min(f.seq) AS first_seq
    FROM event_facts f CROSS JOIN LATERAL unnest(f.data_elements) AS el
    WHERE f.log_id = $1 AND f.seq < $2
    GROUP BY 1, 2, 3, 4
), stored AS (
    SELECT day, source_system, destination_system, data_element FROM flow_day_elements WHERE log_id = $1
)
SELECT coalesce(e.first_seq, 0) AS seq, coalesce(e.day, s.day) AS day,
       coalesce(e.source_system, s.source_system) AS source_system,
       coalesce(e.destination_system, s.destination_system) AS destination_system,
       CASE WHEN e.day IS NULL THEN 'orphan' ELSE 'missing' END AS kind
FROM expected e FULL JOIN stored s USING (day, source_system, destination_system, data_element)
WHERE e.day IS NULL OR s.day IS NULL
ORDER BY 1 LIMIT 1
"""

_DETAIL = {
    "orphan": "has a row for {day} {src} -> {dst} that no event carries",
    "missing": "lacks a row for {day} {src} -> {dst}",
    "differs": "has a count or time for {day} {src} -> {dst} that differs from the events",
}


async def first_flow_mismatch(conn: Connection, log_id: int, size: int) -> tuple[int, str] | None:
    """The lowest seq at which the rollup disagrees with ``event_facts``."""
    found = []
    for sql, table in ((FLOW_DAYS_DIFF, "flow_days"), (FLOW_ELEMENTS_DIFF, "flow_day_elements")):
        row = await conn.fetchrow(sql, log_id, size)
        if row is not None:
            what = _DETAIL[row["kind"]].format(day=row["day"], src=row["source_system"], dst=row["destination_system"])
            found.append((int(row["seq"]), f"the flow rollup ({table}) {what}"))
    return min(found, default=None)
