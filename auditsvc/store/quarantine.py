"""Queries on ``syslog_quarantine`` (migration 0013): ATNA messages kept
whole, sealed, until a replay maps them or an admin discards them.

Listing walks ``(log_id, status[, reason], id)`` with a keyset and LIMIT, so a
page reads the rows it returns (tests/test_syslog_quarantine.py checks the
plans); the sealed message is read only by ``quarantined_message``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .session import Connection


@dataclass(frozen=True, slots=True)
class NewQuarantined:
    message_hmac: bytes
    message_sealed: str
    message_bytes: int
    reason: str
    detail: str
    transport: str
    peer: str | None
    emitter: str
    allowed_systems: tuple[str, ...] | None
    msgid: str | None


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    id: int
    reason: str
    detail: str
    transport: str
    peer: str | None
    emitter: str
    allowed_systems: tuple[str, ...] | None
    msgid: str | None
    message_bytes: int
    received_at: datetime
    last_received_at: datetime
    times_received: int
    status: str
    replayed_at: datetime | None
    replay_seqs: tuple[int, ...] | None


_COLUMNS = (
    "id, reason, detail, transport, peer, emitter, allowed_systems, msgid, message_bytes, received_at, "
    "last_received_at, times_received, status, replayed_at, replay_seqs"
)

# A resend of a quarantined message counts; the first copy stays as it was.
INSERT_SQL = """
INSERT INTO syslog_quarantine (log_id, message_hmac, message_sealed, message_bytes, reason, detail,
                               transport, peer, emitter, allowed_systems, msgid)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (log_id, message_hmac) DO UPDATE
SET times_received = syslog_quarantine.times_received + 1, last_received_at = now()
RETURNING id, (xmax = 0) AS inserted
"""

STATUSES = ("quarantined", "replayed", "discarded")

# One statement per status, the status a literal: a generic plan then still
# knows how rare each status is (most rows end up replayed; the few still
# quarantined are what an admin lists), and walks the index that has the
# page's rows together instead of the primary key, filtering.
# $1 log, $2 after this id, $3 page size.
LIST_SQL = {
    status: f"""
SELECT {_COLUMNS} FROM syslog_quarantine
WHERE log_id = $1 AND status = '{status}' AND id > $2
ORDER BY id
LIMIT $3
"""
    for status in STATUSES
}

# The quarantined entries of one reason (what a replay after a fix takes;
# entries already replayed are not listed by reason: a rare reason among
# them would be found by walking the others). $1 log, $2 reason, $3 after
# this id, $4 page size.
LIST_BY_REASON_SQL = f"""
SELECT {_COLUMNS} FROM syslog_quarantine
WHERE log_id = $1 AND status = 'quarantined' AND reason = $2 AND id > $3
ORDER BY id
LIMIT $4
"""

ROW_SQL = f"SELECT {_COLUMNS}, message_sealed FROM syslog_quarantine WHERE log_id = $1 AND id = $2"

REPLAYED_SQL = """
UPDATE syslog_quarantine SET status = 'replayed', replayed_at = now(), replay_seqs = $3
WHERE log_id = $1 AND id = $2 AND status = 'quarantined'
"""

STILL_FAILING_SQL = """
UPDATE syslog_quarantine SET reason = $3, detail = $4
WHERE log_id = $1 AND id = $2 AND status = 'quarantined'
"""

DISCARD_SQL = """
UPDATE syslog_quarantine SET status = 'discarded'
WHERE log_id = $1 AND id = $2 AND status = 'quarantined'
"""


def _row(record: object) -> QuarantineRow:
    r = dict(record)  # type: ignore[call-overload]
    r.pop("message_sealed", None)
    systems, seqs = r.pop("allowed_systems"), r.pop("replay_seqs")
    return QuarantineRow(
        **r,
        allowed_systems=None if systems is None else tuple(systems),
        replay_seqs=None if seqs is None else tuple(seqs),
    )


async def insert_quarantined(conn: Connection, log_id: int, q: NewQuarantined) -> tuple[int, bool]:
    """The row's id, and whether it is new (False: a resend, counted)."""
    row = await conn.fetchrow(
        INSERT_SQL,
        log_id,
        q.message_hmac,
        q.message_sealed,
        q.message_bytes,
        q.reason,
        q.detail,
        q.transport,
        q.peer,
        q.emitter,
        None if q.allowed_systems is None else list(q.allowed_systems),
        q.msgid,
    )
    assert row is not None
    return int(row["id"]), bool(row["inserted"])


async def list_quarantined(
    conn: Connection, log_id: int, status: str, reason: str | None, after_id: int, limit: int
) -> list[QuarantineRow]:
    if reason is None:
        rows = await conn.fetch(LIST_SQL[status], log_id, after_id, limit)
    else:
        if status != "quarantined":
            raise ValueError("entries are listed by reason only while quarantined")
        rows = await conn.fetch(LIST_BY_REASON_SQL, log_id, reason, after_id, limit)
    return [_row(r) for r in rows]


async def quarantined_message(conn: Connection, log_id: int, row_id: int) -> tuple[QuarantineRow, str] | None:
    """One row and its sealed message."""
    record = await conn.fetchrow(ROW_SQL, log_id, row_id)
    if record is None:
        return None
    return _row(record), str(record["message_sealed"])


async def mark_replayed(conn: Connection, log_id: int, row_id: int, seqs: Sequence[int]) -> bool:
    return await conn.execute(REPLAYED_SQL, log_id, row_id, list(seqs)) == "UPDATE 1"


async def mark_still_failing(conn: Connection, log_id: int, row_id: int, reason: str, detail: str) -> bool:
    return await conn.execute(STILL_FAILING_SQL, log_id, row_id, reason, detail) == "UPDATE 1"


async def mark_discarded(conn: Connection, log_id: int, row_id: int) -> bool:
    return await conn.execute(DISCARD_SQL, log_id, row_id) == "UPDATE 1"
