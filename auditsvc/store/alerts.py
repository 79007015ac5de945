"""The alerts table (migration 0016): raising, listing, acknowledging and
delivering alerts. Each statement reads rows bounded by what it returns (or
a page of alerts), never by the log (tests/test_alerts_plans.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from .session import Connection

ALERT_LOCK_CLASS = 0x414C5254  # "ALRT": one process at a time looks for alerts and delivers them

Status = Literal["open", "acknowledged", "all"]

COLUMNS = (
    "alert_id, kind, alert_key, systems, details, raised_at, raised_seq, acknowledged_at, acknowledged_by, "
    "acknowledged_seq, notes, delivery, attempts, next_attempt_at, last_error"
)


@dataclass(frozen=True)
class NewAlert:
    alert_id: UUID
    kind: str
    key: str
    systems: list[str]
    details: dict[str, Any]


NEW_PAIRS_FROM_SQL = "SELECT new_pairs_from FROM alert_state WHERE log_id = $1"

# Of the candidates, those not raised yet (the unique key is the backstop).
UNRAISED_SQL = """
SELECT c.i FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS c(kind, alert_key, i)
WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.log_id = $1 AND a.kind = c.kind AND a.alert_key = c.alert_key)
"""

INSERT_SQL = """
INSERT INTO alerts (log_id, alert_id, kind, alert_key, systems, details, raised_at, raised_seq, next_attempt_at)
SELECT $1, u.alert_id, u.kind, u.alert_key, string_to_array(u.systems, ' '), u.details::jsonb, $7, u.seq, $7
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $8::bigint[])
     AS u(alert_id, kind, alert_key, systems, details, seq)
ORDER BY u.kind, u.alert_key
"""

LIST_SQL = {
    "open": f"SELECT {COLUMNS} FROM alerts WHERE log_id = $1 AND acknowledged_at IS NULL "
    "ORDER BY raised_at DESC, alert_id DESC LIMIT $2",
    "acknowledged": f"SELECT {COLUMNS} FROM alerts WHERE log_id = $1 AND acknowledged_at IS NOT NULL "
    "ORDER BY raised_at DESC, alert_id DESC LIMIT $2",
    "all": f"SELECT {COLUMNS} FROM alerts WHERE log_id = $1 ORDER BY raised_at DESC, alert_id DESC LIMIT $2",
}

SINCE_SQL = f"SELECT {COLUMNS} FROM alerts WHERE log_id = $1 AND raised_seq > $2 ORDER BY raised_seq LIMIT $3"

FOR_ACK_SQL = f"SELECT {COLUMNS} FROM alerts WHERE log_id = $1 AND alert_id = $2 FOR UPDATE"

ACK_SQL = """
UPDATE alerts SET acknowledged_at = $3, acknowledged_by = $4, acknowledged_seq = $5, notes = $6
WHERE log_id = $1 AND alert_id = $2 AND acknowledged_at IS NULL
"""

DUE_SQL = f"""
SELECT {COLUMNS} FROM alerts WHERE log_id = $1 AND delivery = 'pending' AND next_attempt_at <= $2
ORDER BY next_attempt_at LIMIT $3
"""

DELIVERY_SQL = """
UPDATE alerts SET delivery = $3, attempts = $4, next_attempt_at = $5, last_error = $6
WHERE log_id = $1 AND alert_id = $2
"""


@dataclass(frozen=True)
class AlertRow:
    alert_id: UUID
    kind: str
    key: str
    systems: list[str]
    details: dict[str, Any]
    raised_at: datetime
    raised_seq: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledged_seq: int | None
    notes: str | None
    delivery: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


def _row(r: Any) -> AlertRow:
    details = r["details"]
    return AlertRow(
        r["alert_id"],
        r["kind"],
        r["alert_key"],
        list(r["systems"]),
        json.loads(details) if isinstance(details, str) else details,
        r["raised_at"],
        int(r["raised_seq"]),
        r["acknowledged_at"],
        r["acknowledged_by"],
        r["acknowledged_seq"],
        r["notes"],
        r["delivery"],
        int(r["attempts"]),
        r["next_attempt_at"],
        r["last_error"],
    )


async def try_alert_lock(conn: Connection, log_id: int) -> bool:
    """The alert pass's lock for the current transaction, if no other process holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", ALERT_LOCK_CLASS, log_id))


async def new_pairs_from(conn: Connection, log_id: int) -> int:
    value = await conn.fetchval(NEW_PAIRS_FROM_SQL, log_id)
    return 0 if value is None else int(value)


async def unraised(conn: Connection, log_id: int, keys: Sequence[tuple[str, str]]) -> list[int]:
    """Indexes (0-based) of the (kind, key) candidates that have no alert yet."""
    if not keys:
        return []
    rows = await conn.fetch(UNRAISED_SQL, log_id, [k for k, _ in keys], [key for _, key in keys])
    return sorted(int(r["i"]) - 1 for r in rows)


async def insert_alerts(
    conn: Connection, log_id: int, alerts: Sequence[NewAlert], seqs: Sequence[int], now: datetime
) -> None:
    await conn.execute(
        INSERT_SQL,
        log_id,
        [a.alert_id for a in alerts],
        [a.kind for a in alerts],
        [a.key for a in alerts],
        [" ".join(a.systems) for a in alerts],
        [json.dumps(a.details, sort_keys=True) for a in alerts],
        now,
        list(seqs),
    )


async def list_alerts(conn: Connection, log_id: int, status: Status, limit: int) -> list[AlertRow]:
    return [_row(r) for r in await conn.fetch(LIST_SQL[status], log_id, limit)]


async def alerts_after(conn: Connection, log_id: int, seq: int, limit: int) -> list[AlertRow]:
    return [_row(r) for r in await conn.fetch(SINCE_SQL, log_id, seq, limit)]


async def alert_for_update(conn: Connection, log_id: int, alert_id: UUID) -> AlertRow | None:
    row = await conn.fetchrow(FOR_ACK_SQL, log_id, alert_id)
    return None if row is None else _row(row)


async def acknowledge(
    conn: Connection, log_id: int, alert_id: UUID, at: datetime, by: str, seq: int, notes: str
) -> None:
    await conn.execute(ACK_SQL, log_id, alert_id, at, by, seq, notes)


async def due_for_delivery(conn: Connection, log_id: int, now: datetime, limit: int) -> list[AlertRow]:
    return [_row(r) for r in await conn.fetch(DUE_SQL, log_id, now, limit)]


async def set_delivery(
    conn: Connection,
    log_id: int,
    alert_id: UUID,
    state: str,
    attempts: int,
    next_attempt_at: datetime,
    error: str | None,
) -> None:
    await conn.execute(DELIVERY_SQL, log_id, alert_id, state, attempts, next_attempt_at, error)
