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

import contextlib
import gc
import hashlib
import hmac
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from auditsvc_sdk.chain import (
    CHAIN_TAG,
    SEALED_RECORD_VERSION,
    UnsupportedFormatVersion,
    check_format_version,
)
from auditsvc_sdk.merkle import CompactRange

from ..store import events as store_events
from ..store import verify as store
from ..store.session import Connection

MISSING_ROW = "missing_row"
DUPLICATE_SEQ = "duplicate_seq"
MALFORMED_RECORD = "malformed_record"
UNSUPPORTED_VERSION = "unsupported_version"
RECORD_MISMATCH = "record_mismatch"
LEAF_HASH_MISMATCH = "leaf_hash_mismatch"
CHAIN_HASH_MISMATCH = "chain_hash_mismatch"

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
    (``store.verify.INDEX_FINGERPRINT``)."""
    return sum(_TOP_64(_sha256(fingerprint_key + key + event_id).digest())[0] >> 4 for key in lookup_keys)


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


class _RangeCheck:
    """One range's check, in three steps:

    * ``plan``: the chain hash the first row must follow from;
    * ``run``: every row, in ``seq`` order, until the first damage (the
      leaves and the lookup-index fingerprint are kept as it goes);
    * ``judge``: the result: how far the rows held, the tree's frontier
      there and at each checkpoint size the range reached.
    """

    def __init__(self, conn: Connection, task: RangeTask) -> None:
        self.conn, self.task = conn, task
        self.planned = False
        self.first_previous = b""
        self.previous = b""  # the chain hash after the last row that passed
        self.expected = task.start  # the next seq
        self.leaves: list[bytes] = []
        self.check_index = task.check_index
        self.index_known = True
        self.index_count = self.index_fp = 0
        self.damage: Damage | None = None

    async def plan(self) -> bool:
        """The chain hash to start from (the task's, else the stored one of
        the row before the range); False when that row is missing."""
        task = self.task
        previous = task.previous
        if previous is None:
            previous = await store_events.chain_hash_at(self.conn, task.log_id, task.start - 1)
            if previous is None:
                self.damage = Damage(task.start - 1, MISSING_ROW, f"row {task.start - 1} is missing")
                return False
        self.first_previous = self.previous = previous
        self.planned = True
        return True

    async def run(self, progress: Callable[[int], None] | None) -> None:
        """Check the rows batch by batch; ``progress(rows done)`` after each."""
        task = self.task
        batches = store.range_batches(self.conn, task.log_id, task.start, task.stop, FETCH_ROWS)
        with _collector_paused():
            async with contextlib.aclosing(batches):
                async for rows in batches:
                    self.damage = self._check_rows(rows)
                    if progress is not None:
                        progress(self.expected)
                    if self.damage is not None:
                        break
        if self.damage is None and self.expected < task.stop:
            self.damage = Damage(self.expected, MISSING_ROW, f"rows {self.expected}..{task.stop - 1} are missing")

    def _check_rows(self, rows: Sequence[Any]) -> Damage | None:
        """Steps 1 to 6 for each row of a batch (the hot path: state in
        locals, written back at the end); the first damage, if any."""
        decode, sha256, tag, fromhex, top64 = _decode_fields, _sha256, CHAIN_TAG, bytes.fromhex, _TOP_64
        leaf_prefix, add_leaf, fp_key = _LEAF_PREFIX, self.leaves.append, self.task.fingerprint_key
        previous, expected, check_index = self.previous, self.expected, self.check_index
        index_count, index_fp = self.index_count, self.index_fp
        damage: Damage | None = None
        for row in rows:
            seq, event_id, occurred_at, text, stored_leaf, stored_chain = row
            # 1. The next seq.
            if seq != expected:
                damage = _out_of_order(seq, expected)
                break
            data = text if type(text) is bytes else text.encode()  # bytes under ``text_as_bytes``
            # 2-3. The record matches its row. The common case, a format-2
            # record that matches, is one test on the few fields decoded.
            # Anything else (format 1, a record of another shape, a
            # mismatch) goes the general way, which names what is wrong.
            try:
                fields: _Fields | None = decode(data)
            except msgspec.MsgspecError:
                fields = None
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
            # 4. The leaf hash.
            hasher = leaf_prefix.copy()
            hasher.update(data)
            leaf = hasher.digest()
            if leaf != stored_leaf:
                damage = Damage(seq, LEAF_HASH_MISMATCH, "the record's bytes do not hash to the stored leaf hash")
                break
            # 5. The chain hash.
            current = sha256(tag + previous + leaf).digest()
            if current != stored_chain:
                damage = Damage(seq, CHAIN_HASH_MISMATCH, "the chain hash does not follow from the previous row")
                break
            # 6. The lookup keys, into the fingerprint (index_fingerprint
            # inline for format 2: this is the per-row hot path).
            if check_index and record is None:
                assert fields is not None
                eid = event_id.bytes
                try:
                    for identifier in fields.patient.identifiers:
                        index_fp += top64(sha256(fp_key + fromhex(identifier.value_hmac) + eid).digest())[0] >> 4
                        index_count += 1
                except (AttributeError, KeyError, TypeError, ValueError):  # not hex, ...
                    damage = _malformed_identifiers(seq)
                    break
            elif check_index:
                assert record is not None
                try:
                    lookup = identifier_lookup_keys(record, self.task.identifier_key)
                except (AttributeError, KeyError, TypeError, ValueError):  # not hex, not a list, ...
                    damage = _malformed_identifiers(seq)
                    break
                if lookup is None:
                    self.index_known = check_index = False
                else:
                    index_count += len(lookup)
                    index_fp += index_fingerprint(fp_key, event_id.bytes, lookup)
            add_leaf(leaf)
            previous = current
            expected += 1
        self.previous, self.expected, self.check_index = previous, expected, check_index
        self.index_count, self.index_fp = index_count, index_fp
        return damage

    async def judge(self) -> RangeResult:
        """What the range proved: the rows that held (up to the first
        damage), the tree's frontier after them and at each checkpoint size
        they reached, with the chain hash there."""
        task = self.task
        if not self.planned:  # no row to start from
            return RangeResult(task.start, 0, b"", b"", (), damage=self.damage)
        checked = self.expected - task.start
        result = RangeResult(
            task.start,
            checked,
            self.first_previous,
            self.previous,
            task.base_frontier,
            index_count=self.index_count,
            index_fp=self.index_fp,
            index_known=self.index_known,
            damage=self.damage,
        )
        points = [size for size in task.points if size <= self.expected]
        chains = await self._chain_hashes_at(points)
        leaves = self.leaves
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
        return result

    async def _chain_hashes_at(self, sizes: list[int]) -> dict[int, bytes]:
        """The chain hash after the first ``size`` rows, for sizes the range
        verified: the stored hash of row ``size - 1``, which verification
        just proved equal to the computed one (``previous`` after the last
        row that passed)."""
        out = {self.expected: self.previous} if self.expected in sizes else {}
        wanted = [size - 1 for size in sizes if size != self.expected]
        if wanted:
            stored = await store.chain_hashes_at(self.conn, self.task.log_id, wanted)
            out.update((seq + 1, chain) for seq, chain in stored.items())
        return out


def _out_of_order(seq: int, expected: int) -> Damage:
    if seq > expected:
        return Damage(expected, MISSING_ROW, f"rows {expected}..{seq - 1} are missing")
    return Damage(seq, DUPLICATE_SEQ, "a second row claims this seq")


def _malformed_identifiers(seq: int) -> Damage:
    return Damage(seq, MALFORMED_RECORD, "the record's patient identifiers are malformed")


async def check_range(conn: Connection, task: RangeTask, progress: Callable[[int], None] | None = None) -> RangeResult:
    """Verify rows ``[task.start, task.stop)`` on ``conn`` (inside the
    caller's snapshot transaction); ``progress(rows done)`` after each fetch."""
    check = _RangeCheck(conn, task)
    if await check.plan():
        await check.run(progress)
    return await check.judge()
