"""Queries behind full verification (``domain/verify.py``, ``domain/verify_range.py``).

All on raw asyncpg connections, inside the caller's read-only
repeatable-read transaction (or a worker's, on the snapshot the caller
exported): every query here reads the same snapshot. Nothing here decides
anything; the rows are judged in ``domain/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import asyncpg

# occurred_at as the chain writes it (UTC, six fractional digits, "Z"), so
# the comparison with the record is one string equality; varchar, so that it
# stays a str where ``text_as_bytes`` has the record arrive as bytes.
ROWS_SQL = (
    "SELECT seq, event_id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')::varchar, "
    "record, leaf_hash, chain_hash FROM events WHERE log_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq"
)
# Over the whole table in the verifying snapshot: lookup rows are written in
# the same transaction as their event, so the snapshot holds exactly the rows
# of the events it holds, and rows naming no stored event count too. Per row:
# 60 bits of SHA-256(K || lookup key || event id), summed
# (domain.verify_range.index_fingerprint is the same on the records' side). K
# ($2) is a random key drawn by each verification: a sum of unkeyed hashes
# could be matched by a forger who deletes index rows and inserts made-up
# ones chosen with a generalized-birthday search (a few thousand hashes for
# 60 bits), but rows written before K was drawn sum to the records' total
# only by chance (about 2^-60).
INDEX_FINGERPRINT = """
SELECT count(*) AS n,
       coalesce(sum(
           ((('x' || encode(substring(sha256($2 || id_hmac || uuid_send(event_id)) FROM 1 FOR 8), 'hex'))::bit(64))
            >> 4)::bigint
       ), 0) AS fp
FROM event_identifiers WHERE log_id = $1
"""

# Index rows grouped by the seq of the event they name; rows naming no
# stored event come first (seq NULL).
_INDEX_BY_SEQ = """
SELECT e.seq, array_agg(ei.id_hmac ORDER BY ei.id_hmac) AS hmacs
FROM event_identifiers ei LEFT JOIN events e ON e.log_id = ei.log_id AND e.event_id = ei.event_id
WHERE ei.log_id = $1 GROUP BY e.seq ORDER BY e.seq NULLS FIRST
"""

_PREFETCH = 5000  # rows per round trip of the cursors that walk the whole log


async def decode_text_as_bytes(conn: asyncpg.Connection) -> None:
    """From now on, ``text`` values arrive on ``conn`` as their UTF-8 bytes."""
    await conn.set_type_codec("text", schema="pg_catalog", encoder=bytes, decoder=bytes, format="binary")


@contextlib.asynccontextmanager
async def text_as_bytes(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Within the block, ``text`` values arrive on ``conn`` as their UTF-8
    bytes, not decoded: a record is hashed and parsed as bytes, so decoding
    it to a str only to encode it again would be wasted."""
    await decode_text_as_bytes(conn)
    try:
        yield
    finally:
        await conn.reset_type_codec("text", schema="pg_catalog")


async def range_batches(
    conn: asyncpg.Connection, log_id: int, start: int, stop: int, size: int
) -> AsyncGenerator[list[asyncpg.Record], None]:
    """Rows ``[start, stop)`` in ``seq`` order, ``size`` per round trip of a
    server-side cursor, as ``ROWS_SQL`` reads them (``seq, event_id,
    occurred_at text, record, leaf_hash, chain_hash``)."""
    cursor = await conn.cursor(ROWS_SQL, log_id, start, stop)
    while rows := await cursor.fetch(size):
        yield rows


async def chain_hashes_at(conn: asyncpg.Connection, log_id: int, seqs: Sequence[int]) -> dict[int, bytes]:
    """The stored chain hash of each of ``seqs`` that has a row."""
    rows = await conn.fetch(
        "SELECT seq, chain_hash FROM events WHERE log_id = $1 AND seq = ANY($2::bigint[])", log_id, list(seqs)
    )
    return {int(r["seq"]): bytes(r["chain_hash"]) for r in rows}


async def index_sum(conn: asyncpg.Connection, log_id: int, fingerprint_key: bytes) -> tuple[int, int]:
    """The lookup index's row count and fingerprint sum (``INDEX_FINGERPRINT``)
    in ``conn``'s snapshot: what the records' ``index_fingerprint`` sums must equal."""
    row = await conn.fetchrow(INDEX_FINGERPRINT, log_id, fingerprint_key)
    assert row is not None  # an aggregate always returns a row
    return int(row["n"]), int(row["fp"])


async def index_groups(conn: asyncpg.Connection, log_id: int) -> AsyncGenerator[tuple[int | None, list[bytes]], None]:
    """The lookup index's ``(seq, sorted id_hmacs)`` per event it names, in
    ``seq`` order; rows naming no stored event first, with seq ``None``."""
    async for row in conn.cursor(_INDEX_BY_SEQ, log_id, prefetch=_PREFETCH):
        seq = row["seq"]
        yield (None if seq is None else int(seq)), [bytes(h) for h in row["hmacs"]]


async def records_before(conn: asyncpg.Connection, log_id: int, upto: int) -> AsyncGenerator[tuple[int, str], None]:
    """``(seq, record text)`` of rows ``[0, upto)`` in ``seq`` order."""
    async for row in conn.cursor(
        "SELECT seq, record FROM events WHERE log_id = $1 AND seq < $2 ORDER BY seq", log_id, upto, prefetch=_PREFETCH
    ):
        yield int(row["seq"]), row["record"]


async def export_snapshot(conn: asyncpg.Connection) -> str:
    """Export ``conn``'s transaction snapshot for worker connections to share."""
    return str(await conn.fetchval("SELECT pg_export_snapshot()"))


def checked_snapshot_id(value: str) -> str:
    """A snapshot id as ``pg_export_snapshot()`` returns it (hex digits and dashes)."""
    if not value or any(c not in "0123456789ABCDEFabcdef-" for c in value):
        raise ValueError("unexpected snapshot id from pg_export_snapshot()")
    return value


async def connect_on_snapshot(dsn: str, snapshot: str) -> asyncpg.Connection:
    """A new connection in a read-only repeatable-read transaction on
    ``snapshot``, with ``text`` as bytes for good (it only reads ranges)."""
    snapshot = checked_snapshot_id(snapshot)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        await decode_text_as_bytes(conn)
    except BaseException:
        await conn.close()
        raise
    return conn
