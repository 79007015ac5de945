"""Reading the ``events`` table: the log's size, one event, one chain hash.

(The append transaction that writes it is ``append.py``; the leaf hashes the
tree is built from are read in ``tree.py``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from .session import Connection


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One ``events`` row: the record as stored (what the hashes cover) and its hashes."""

    seq: int
    record: str
    leaf_hash: bytes
    chain_hash: bytes


COMMITTED_SIZE_SQL = "SELECT coalesce(max(seq) + 1, 0) FROM events WHERE log_id = $1"


async def committed_size(conn: Connection, log_id: int) -> int:
    """Events committed: appends commit in ``seq`` order (the append lock is
    held to commit), so what a snapshot sees is always a gapless prefix."""
    value = await conn.fetchval(COMMITTED_SIZE_SQL, log_id)
    return int(value)


async def chain_hash_at(conn: Connection, log_id: int, seq: int) -> bytes | None:
    """The chain hash stored with event ``seq``, or None when there is no such event."""
    value = await conn.fetchval("SELECT chain_hash FROM events WHERE log_id = $1 AND seq = $2", log_id, seq)
    return None if value is None else bytes(value)


async def event_by_id(conn: Connection, log_id: int, event_id: UUID) -> StoredEvent | None:
    row = await conn.fetchrow(
        # event_ids names the seq; the seq names the partition (migration 0010).
        "SELECT e.seq, e.record, e.leaf_hash, e.chain_hash FROM event_ids i "
        "JOIN events e ON e.log_id = i.log_id AND e.seq = i.seq WHERE i.log_id = $1 AND i.event_id = $2",
        log_id,
        event_id,
    )
    if row is None:
        return None
    return StoredEvent(int(row["seq"]), row["record"], bytes(row["leaf_hash"]), bytes(row["chain_hash"]))
