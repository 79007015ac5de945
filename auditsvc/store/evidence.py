"""Queries behind evidence packages (``domain/evidence.py``): the rows of a
range as stored, read in the caller's snapshot transaction. The tree's
nodes, checkpoints and keys come from ``tree.py``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

import asyncpg

_PREFETCH = 5000  # rows per round trip of the server-side cursor


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """One event as the package carries it: the record as stored (the bytes
    the leaf hash covers) and its hashes."""

    seq: int
    record: str
    leaf_hash: bytes
    chain_hash: bytes


async def events_between(
    conn: asyncpg.Connection, log_id: int, first: int, last: int
) -> AsyncGenerator[EvidenceRow, None]:
    """The events ``first..last`` (inclusive) that are stored, in ``seq`` order."""
    async for row in conn.cursor(
        "SELECT seq, record, leaf_hash, chain_hash FROM events "
        "WHERE log_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
        log_id,
        first,
        last,
        prefetch=_PREFETCH,
    ):
        yield EvidenceRow(int(row["seq"]), row["record"], bytes(row["leaf_hash"]), bytes(row["chain_hash"]))
