"""Queries behind the Merkle tree and checkpoints: leaf hashes, stored
perfect nodes, signed checkpoints, verifier keys and witness cosignatures.

All of it is insert-only, like the log; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .session import Connection


async def leaf_hashes(conn: Connection, log_id: int, begin: int, end: int) -> list[bytes]:
    """Leaf hashes of ``seq`` in ``[begin, end)``, in order."""
    if end <= begin:
        return []
    rows = await conn.fetch(
        "SELECT leaf_hash FROM events WHERE log_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq", log_id, begin, end
    )
    if len(rows) != end - begin:
        raise LookupError(f"the log holds {len(rows)} of the leaves {begin}..{end - 1}")
    return [bytes(r[0]) for r in rows]


async def stored_nodes(conn: Connection, log_id: int, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    if not ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT n.level, n.idx, n.hash FROM merkle_nodes n
        JOIN unnest($2::smallint[], $3::bigint[]) AS want(level, idx) ON n.level = want.level AND n.idx = want.idx
        WHERE n.log_id = $1
        """,
        log_id,
        [level for level, _ in ids],
        [idx for _, idx in ids],
    )
    return {(int(r["level"]), int(r["idx"])): bytes(r["hash"]) for r in rows}


async def stored_blocks(conn: Connection, log_id: int, level: int) -> int:
    """How many nodes of ``level`` (the lowest stored one) are stored: they are written in order."""
    value = await conn.fetchval(
        "SELECT coalesce(max(idx) + 1, 0) FROM merkle_nodes WHERE log_id = $1 AND level = $2", log_id, level
    )
    return int(value)


async def insert_nodes(conn: Connection, log_id: int, nodes: Iterable[tuple[int, int, bytes]]) -> None:
    rows = [(log_id, level, idx, h) for level, idx, h in nodes]
    if rows:
        # Another process may have stored the same nodes (same hashes): keep theirs.
        await conn.executemany(
            "INSERT INTO merkle_nodes (log_id, level, idx, hash) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", rows
        )


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    note: str
    vkey: str
    created_at: datetime


_CHECKPOINT_COLUMNS = "tree_size, root_hash, note, vkey, created_at"


def _checkpoint(row: asyncpg.Record | None) -> StoredCheckpoint | None:
    if row is None:
        return None
    return StoredCheckpoint(int(row["tree_size"]), bytes(row["root_hash"]), row["note"], row["vkey"], row["created_at"])


async def latest_checkpoint(conn: Connection, log_id: int) -> StoredCheckpoint | None:
    row = await conn.fetchrow(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE log_id = $1 ORDER BY tree_size DESC LIMIT 1", log_id
    )
    return _checkpoint(row)


async def checkpoint_at(conn: Connection, log_id: int, tree_size: int) -> StoredCheckpoint | None:
    row = await conn.fetchrow(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE log_id = $1 AND tree_size = $2", log_id, tree_size
    )
    return _checkpoint(row)


async def checkpoints(conn: Connection, log_id: int, min_size: int = 0) -> list[StoredCheckpoint]:
    rows = await conn.fetch(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE log_id = $1 AND tree_size >= $2 ORDER BY tree_size",
        log_id,
        min_size,
    )
    return [c for c in map(_checkpoint, rows) if c is not None]


async def insert_checkpoint(
    conn: Connection, log_id: int, tree_size: int, root_hash: bytes, note: str, vkey: str
) -> None:
    await conn.execute(
        "INSERT INTO checkpoints (log_id, tree_size, root_hash, note, vkey) VALUES ($1, $2, $3, $4, $5)",
        log_id,
        tree_size,
        root_hash,
        note,
        vkey,
    )


async def register_verifier_key(conn: Connection, log_id: int, name: str, key_id: int, vkey: str) -> None:
    await conn.execute(
        "INSERT INTO verifier_keys (log_id, key_name, key_id, vkey) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        log_id,
        name,
        key_id,
        vkey,
    )


async def verifier_keys(conn: Connection, log_id: int) -> list[str]:
    rows = await conn.fetch("SELECT vkey FROM verifier_keys WHERE log_id = $1 ORDER BY first_used, vkey", log_id)
    return [r["vkey"] for r in rows]


async def insert_cosignature(conn: Connection, log_id: int, tree_size: int, witness: str, line: str) -> None:
    await conn.execute(
        "INSERT INTO checkpoint_cosignatures (log_id, tree_size, witness, signature) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING",
        log_id,
        tree_size,
        witness,
        line,
    )


async def cosignatures(conn: Connection, log_id: int, tree_size: int) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT witness, signature FROM checkpoint_cosignatures WHERE log_id = $1 AND tree_size = $2 ORDER BY witness",
        log_id,
        tree_size,
    )
    return [(r["witness"], r["signature"]) for r in rows]


async def cosignature_receipts(conn: Connection, log_id: int, tree_size: int) -> list[tuple[str, datetime]]:
    """(witness name, when its cosignature was received) for one checkpoint."""
    rows = await conn.fetch(
        "SELECT witness, received_at FROM checkpoint_cosignatures WHERE log_id = $1 AND tree_size = $2 "
        "ORDER BY witness",
        log_id,
        tree_size,
    )
    return [(r["witness"], r["received_at"]) for r in rows]


async def last_cosigned_size(conn: Connection, log_id: int, witness: str) -> int | None:
    value = await conn.fetchval(
        "SELECT max(tree_size) FROM checkpoint_cosignatures WHERE log_id = $1 AND witness = $2", log_id, witness
    )
    return None if value is None else int(value)


async def has_cosignature(conn: Connection, log_id: int, tree_size: int, witness: str) -> bool:
    value = await conn.fetchval(
        "SELECT 1 FROM checkpoint_cosignatures WHERE log_id = $1 AND tree_size = $2 AND witness = $3",
        log_id,
        tree_size,
        witness,
    )
    return value is not None
