"""Verification of one range of rows: the per-row work of ``verify_chain``.

``verify_chain`` (domain/verify.py) cuts the log into ranges and checks them
here, in this process or in worker processes that read the same database
snapshot (``SET TRANSACTION SNAPSHOT``). A range needs nothing from the
ranges before it but the chain hash stored on the row just before it: each
range proves that its rows chain from that stored hash, and the range before
proves that the stored hash is the one its own rows end on, so together they
prove the one chain. The Merkle tree splits the same way: a range that
starts at a multiple of a power of two ``C`` no smaller than the range is a
perfect subtree of the log's tree, so the range reports the frontier of its
own leaves and ``verify_chain`` joins the pieces (docs/chain-format.md §15).

Per row (the steps of docs/chain-format.md "Verifying"): the expected
``seq``; the record is a JSON object of a known format version whose
``seq``, ``event_id`` and ``occurred_at`` equal the row's columns; its bytes
hash to the stored leaf hash; the chain hash follows from the previous one;
and, when asked, a fingerprint of the patient lookup keys the record names,
summed over the range and compared by ``verify_chain`` with the index table.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import multiprocessing.util
import struct
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
import orjson
from auditsvc_sdk.chain import (
    CHAIN_TAG,
    SEALED_RECORD_VERSION,
    UnsupportedFormatVersion,
    check_format_version,
)
from auditsvc_sdk.merkle import CompactRange

MISSING_ROW = "missing_row"
DUPLICATE_SEQ = "duplicate_seq"
MALFORMED_RECORD = "malformed_record"
UNSUPPORTED_VERSION = "unsupported_version"
RECORD_MISMATCH = "record_mismatch"
LEAF_HASH_MISMATCH = "leaf_hash_mismatch"
CHAIN_HASH_MISMATCH = "chain_hash_mismatch"

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
# (verify_range.index_fingerprint is the same on the records' side). K ($2)
# is a random key drawn by each verification: a sum of unkeyed hashes could
# be matched by a forger who deletes index rows and inserts made-up ones
# chosen with a generalized-birthday search (a few thousand hashes for 60
# bits), but rows written before K was drawn sum to the records' total only
# by chance (about 2^-60).
INDEX_FINGERPRINT = """
SELECT count(*) AS n,
       coalesce(sum(
           ((('x' || encode(substring(sha256($2 || id_hmac || uuid_send(event_id)) FROM 1 FOR 8), 'hex'))::bit(64))
            >> 4)::bigint
       ), 0) AS fp
FROM event_identifiers WHERE log_id = $1
"""

FETCH_ROWS = 5000  # rows per round trip of the server-side cursor

_sha256 = hashlib.sha256
_LEAF_PREFIX = _sha256(b"\x00")  # copied per row: the leaf hash of a record is this updated with its bytes


class _Identifier(msgspec.Struct, gc=False):
    value_hmac: str  # format 2: format-1 identifiers do not decode here and take the general way


class _Patient(msgspec.Struct, gc=False):
    identifiers: list[_Identifier]


class _Fields(msgspec.Struct, gc=False):
    """The fields of a record that verification compares, decoded without
    building the rest: the other keys are parsed (the bytes must be valid
    JSON) and skipped. ``check_record`` reads the whole record when these do
    not match the row."""

    v: int
    seq: int
    event_id: str
    occurred_at: str
    patient: _Patient


_decode_fields = msgspec.json.Decoder(_Fields).decode


async def _decode_text_as_bytes(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("text", schema="pg_catalog", encoder=bytes, decoder=bytes, format="binary")


@contextlib.asynccontextmanager
async def text_as_bytes(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Within the block, ``text`` values arrive on ``conn`` as their UTF-8
    bytes, not decoded: a record is hashed and parsed as bytes, so decoding
    it to a str only to encode it again would be wasted."""
    await _decode_text_as_bytes(conn)
    try:
        yield
    finally:
        await conn.reset_type_codec("text", schema="pg_catalog")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a range is checked: the rows and
    records make no cycles, and collections triggered by their allocations
    would scan every row of the batch again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class Damage:
    seq: int
    kind: str
    detail: str


@dataclass(frozen=True)
class RangeTask:
    """Rows ``[start, stop)`` of one log.

    ``base_size``/``base_frontier``: the tree the range's leaves extend. With
    ``base_size == start`` the frontiers reported are the log's own; with
    ``base_size == 0`` (a range starting at a multiple of a power of two at
    least its length) they are the range's own subtree, to be joined.
    ``previous``: the chain hash the first row must follow from; ``None``
    reads it from the row before ``start``. ``points``: sizes in
    ``(start, stop]`` at which to report the frontier and chain hash
    (checkpoint sizes). ``identifier_key``: check lookup keys (v1 records
    need the key to recompute them; v2 records carry them).
    ``fingerprint_key``: the verification's key for ``index_fingerprint``.
    """

    log_id: int
    start: int
    stop: int
    base_size: int
    base_frontier: tuple[bytes, ...]
    previous: bytes | None
    points: tuple[int, ...] = ()
    check_index: bool = False
    identifier_key: bytes | None = None
    fingerprint_key: bytes = b""


@dataclass
class RangeResult:
    start: int
    checked: int  # rows that passed, from ``start``
    first_previous: bytes  # the chain hash the range started from
    last_chain: bytes  # the chain hash after the last row that passed
    frontier: tuple[bytes, ...]  # after the last row that passed
    points: list[tuple[int, tuple[bytes, ...], bytes]] = field(default_factory=list)
    index_count: int = 0
    index_fp: int = 0
    index_known: bool = True  # False: a format-1 record and no key to recompute its lookup keys
    damage: Damage | None = None


def identifier_lookup_keys(record: dict[str, Any], identifier_key: bytes | None) -> list[bytes] | None:
    """The patient lookup keys (identifier HMACs) a record names.

    A format-2 record carries each identifier's HMAC beside its encrypted
    value; a format-1 record carries the value in clear, so its HMAC needs the
    server's identifier key (``None`` without one)."""
    identifiers = record["patient"]["identifiers"]  # every record names its patient (chain-format §2.1)
    if record.get("v") == 1:
        if identifier_key is None:
            return None
        return [
            hmac.digest(identifier_key, i["system"].encode() + b"\x00" + i["value"].encode(), "sha256")
            for i in identifiers
        ]
    return [bytes.fromhex(i["value_hmac"]) for i in identifiers]


_TOP_64 = struct.Struct(">Q").unpack_from  # (first 64 bits of a digest,)


def index_fingerprint(fingerprint_key: bytes, event_id: bytes, lookup_keys: Sequence[bytes]) -> int:
    """Sum over the event's lookup keys of 60 bits of SHA-256(fingerprint key
    || lookup key || event id), as the SQL side sums them over the index
    (``INDEX_FINGERPRINT``)."""
    return sum(_TOP_64(_sha256(fingerprint_key + key + event_id).digest())[0] >> 4 for key in lookup_keys)


async def index_sum(conn: asyncpg.Connection, log_id: int, fingerprint_key: bytes) -> tuple[int, int]:
    """The lookup index's row count and fingerprint sum (``INDEX_FINGERPRINT``)
    in ``conn``'s snapshot: what the records' ``index_fingerprint`` sums must equal."""
    row = await conn.fetchrow(INDEX_FINGERPRINT, log_id, fingerprint_key)
    assert row is not None  # an aggregate always returns a row
    return int(row["n"]), int(row["fp"])


def check_record(row: Any, seq: int) -> tuple[Damage | None, dict[str, Any]]:
    """Steps 2 and 3 for one row (``seq, event_id, occurred_at text, record, ...``)."""
    try:
        record = orjson.loads(row[3])
        if not isinstance(record, dict):
            raise ValueError("not an object")
    except ValueError:
        return Damage(seq, MALFORMED_RECORD, "the stored record is not a JSON object"), {}
    try:
        check_format_version(record)
    except UnsupportedFormatVersion:
        return Damage(seq, UNSUPPORTED_VERSION, f"record declares format version {record.get('v')!r}"), {}
    claimed = record.get("seq")
    if type(claimed) is not int or claimed != seq:
        return Damage(seq, RECORD_MISMATCH, f"the record at this row says seq {claimed!r}"), {}
    if record.get("event_id") != str(row[1]):
        return Damage(seq, RECORD_MISMATCH, "the row's event_id differs from its record's"), {}
    if record.get("occurred_at") != row[2]:
        return Damage(seq, RECORD_MISMATCH, "the row's occurred_at differs from its record's"), {}
    return None, record


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every complete level of the perfect subtrees over ``leaves``, leaves first."""
    levels = [leaves]
    level = leaves
    while len(level) > 1:
        pairs = iter(level)
        level = [_sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        levels.append(level)
    return levels


def _prefix_frontier(levels: list[list[bytes]], size: int) -> tuple[bytes, ...]:
    """The frontier of the first ``size`` leaves, from ``_levels``."""
    frontier = []
    covered = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            frontier.append(levels[level][covered >> level])
            covered += 1 << level
    return tuple(frontier)


async def check_range(
    conn: asyncpg.Connection, task: RangeTask, progress: Callable[[int], None] | None = None
) -> RangeResult:
    """Verify rows ``[task.start, task.stop)`` on ``conn`` (inside the
    caller's snapshot transaction); ``progress(rows done)`` after each fetch."""
    previous = task.previous
    if previous is None:
        stored = await conn.fetchval(
            "SELECT chain_hash FROM events WHERE log_id = $1 AND seq = $2", task.log_id, task.start - 1
        )
        if stored is None:
            missing = Damage(task.start - 1, MISSING_ROW, f"row {task.start - 1} is missing")
            return RangeResult(task.start, 0, b"", b"", (), damage=missing)
        previous = bytes(stored)
    result = RangeResult(task.start, 0, previous, previous, task.base_frontier)
    identifier_key = task.identifier_key
    check_index = task.check_index
    fp_key = task.fingerprint_key
    leaves: list[bytes] = []
    add_leaf = leaves.append
    decode, sha256, tag, fromhex, top64 = _decode_fields, _sha256, CHAIN_TAG, bytes.fromhex, _TOP_64
    leaf_prefix = _LEAF_PREFIX
    expected = task.start
    index_count = index_fp = 0
    damage: Damage | None = None
    cursor = await conn.cursor(ROWS_SQL, task.log_id, task.start, task.stop)
    with _collector_paused():
        while damage is None:
            rows = await cursor.fetch(FETCH_ROWS)
            if not rows:
                break
            for row in rows:
                seq, event_id, occurred_at, text, stored_leaf, stored_chain = row
                if seq != expected:
                    if seq > expected:
                        damage = Damage(expected, MISSING_ROW, f"rows {expected}..{seq - 1} are missing")
                    else:
                        damage = Damage(seq, DUPLICATE_SEQ, "a second row claims this seq")
                    break
                data = text if type(text) is bytes else text.encode()  # bytes under ``text_as_bytes``
                try:
                    fields: _Fields | None = decode(data)
                except msgspec.MsgspecError:
                    fields = None
                # The common case, a format-2 record that matches its row, is
                # one test on the few fields read. Anything else (format 1, a
                # record of another shape, a mismatch) goes the general way,
                # which names what is wrong.
                record: dict[str, Any] | None = None
                if (
                    fields is None
                    or fields.v != SEALED_RECORD_VERSION
                    or fields.seq != seq
                    or fields.event_id != str(event_id)
                    or fields.occurred_at != occurred_at
                ):
                    damage, record = check_record(row, seq)
                    if damage is not None:
                        break
                hasher = leaf_prefix.copy()
                hasher.update(data)
                leaf = hasher.digest()
                if leaf != stored_leaf:
                    damage = Damage(seq, LEAF_HASH_MISMATCH, "the record's bytes do not hash to the stored leaf hash")
                    break
                current = sha256(tag + previous + leaf).digest()
                if current != stored_chain:
                    damage = Damage(seq, CHAIN_HASH_MISMATCH, "the chain hash does not follow from the previous row")
                    break
                if check_index:
                    eid = event_id.bytes
                    try:
                        if record is None:
                            assert fields is not None
                            # index_fingerprint inline: this is the per-row hot path
                            for identifier in fields.patient.identifiers:
                                pair = fp_key + fromhex(identifier.value_hmac) + eid
                                index_fp += top64(sha256(pair).digest())[0] >> 4
                                index_count += 1
                        else:
                            lookup = identifier_lookup_keys(record, identifier_key)
                            if lookup is None:
                                result.index_known = check_index = False
                            else:
                                index_count += len(lookup)
                                index_fp += index_fingerprint(fp_key, eid, lookup)
                    except (AttributeError, KeyError, TypeError, ValueError):  # not hex, not a list, ...
                        damage = Damage(seq, MALFORMED_RECORD, "the record's patient identifiers are malformed")
                        break
                add_leaf(leaf)
                previous = current
                expected += 1
            if progress is not None:
                progress(expected)
    if damage is None and expected < task.stop:
        damage = Damage(expected, MISSING_ROW, f"rows {expected}..{task.stop - 1} are missing")
    checked = expected - task.start
    points = [size for size in task.points if size <= expected]
    chains = await _chain_hashes_at(conn, task.log_id, points, task.start + checked, previous)
    if task.base_size == 0:
        levels = _levels(leaves)
        for size in points:
            result.points.append((size, _prefix_frontier(levels, size - task.start), chains[size]))
        result.frontier = _prefix_frontier(levels, checked)
    else:
        tree = CompactRange.from_frontier(task.base_size, task.base_frontier)
        done = task.start
        for size in points:
            tree.extend(leaves[done - task.start : size - task.start])
            done = size
            result.points.append((size, tree.frontier, chains[size]))
        tree.extend(leaves[done - task.start :])
        result.frontier = tree.frontier
    result.checked = checked
    result.last_chain = previous
    result.index_count, result.index_fp = index_count, index_fp
    result.damage = damage
    return result


async def _chain_hashes_at(
    conn: asyncpg.Connection, log_id: int, sizes: list[int], end: int, last: bytes
) -> dict[int, bytes]:
    """The chain hash after the first ``size`` rows, for sizes the range
    verified: the stored hash of row ``size - 1``, which verification just
    proved equal to the computed one (``last`` after row ``end - 1``)."""
    out = {end: last} if end in sizes else {}
    wanted = [size - 1 for size in sizes if size != end]
    if wanted:
        rows = await conn.fetch(
            "SELECT seq, chain_hash FROM events WHERE log_id = $1 AND seq = ANY($2::bigint[])", log_id, wanted
        )
        out.update((int(r["seq"]) + 1, bytes(r["chain_hash"])) for r in rows)
    return out


class _Worker:
    """A worker process's one connection, in a read-only transaction on the
    exported snapshot, and the event loop it runs on: opened once by
    ``start_worker`` (the pool's initializer) and used by every task the
    process runs, closed when the process exits."""

    def __init__(self, dsn: str, snapshot: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(self._open(dsn, checked_snapshot_id(snapshot)))

    @staticmethod
    async def _open(dsn: str, snapshot: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            await _decode_text_as_bytes(conn)  # for good: the connection only reads ranges
        except BaseException:
            await conn.close()
            raise
        return conn

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.conn.close(timeout=5))
        self.loop.close()


_worker: _Worker | None = None


def start_worker(dsn: str, snapshot: str) -> None:
    """Process-pool initializer: this process's connection on ``snapshot``."""
    global _worker
    _worker = _Worker(dsn, snapshot)
    multiprocessing.util.Finalize(_worker, _worker.close, exitpriority=10)


def _this_worker() -> _Worker:
    if _worker is None:
        raise RuntimeError("not a verification worker process (start_worker was not run)")
    return _worker


def check_range_in_worker(task: RangeTask) -> RangeResult:
    """Process-pool entry: check one range on this worker's snapshot."""
    worker = _this_worker()
    return worker.loop.run_until_complete(check_range(worker.conn, task))


def checked_snapshot_id(value: str) -> str:
    """A snapshot id as ``pg_export_snapshot()`` returns it (hex digits and dashes)."""
    if not value or any(c not in "0123456789ABCDEFabcdef-" for c in value):
        raise ValueError("unexpected snapshot id from pg_export_snapshot()")
    return value
