"""Full verification of the stored chain, recomputed from rows read back.

Steps, per row in ``seq`` order (docs/chain-format.md, "Verifying"):

1. ``seq`` is the next expected value (a gap is a deleted row; a repeat a
   forged one).
2. The stored record is JSON and declares format version 1.
3. The record's ``seq``, ``event_id`` and ``occurred_at`` equal the row's
   indexed columns (the columns reports search by are what was hashed).
4. SHA-256(0x00 || stored record bytes) equals the stored ``leaf_hash``.
5. SHA-256(tag || previous chain hash || leaf hash) equals ``chain_hash``.
6. With the server's keys: the patient lookup index (``event_identifiers``)
   holds exactly the keyed hashes of each record's identifiers. A superuser
   who deletes index rows would hide accesses from reports without touching
   the chain; this catches it. The comparison streams a multiset fingerprint
   and only on a mismatch walks both sides to name the first bad ``seq``.

The first failure is reported with its ``seq`` and kind. Nothing is taken
from the client's request or from the service's memory: only the database.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from auditsvc_sdk import UnsupportedFormatVersion, chain_hash, check_format_version, leaf_hash
from auditsvc_sdk._event import format_timestamp

from ..keys import ServerKeys

MISSING_ROW = "missing_row"
DUPLICATE_SEQ = "duplicate_seq"
MALFORMED_RECORD = "malformed_record"
UNSUPPORTED_VERSION = "unsupported_version"
RECORD_MISMATCH = "record_mismatch"
LEAF_HASH_MISMATCH = "leaf_hash_mismatch"
CHAIN_HASH_MISMATCH = "chain_hash_mismatch"
IDENTIFIER_INDEX_MISMATCH = "identifier_index_mismatch"

_ROWS = "SELECT seq, event_id, occurred_at, record, leaf_hash, chain_hash FROM events WHERE log_id = $1 ORDER BY seq"


@dataclass(frozen=True)
class Damage:
    seq: int
    kind: str
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    log_name: str
    tree_size: int
    rows_checked: int
    head_chain_hash: str | None
    seconds: float
    damage: Damage | None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.damage is not None:
            out["first_bad_seq"] = self.damage.seq
            out["kind"] = self.damage.kind
        return out


def _check_row(row: asyncpg.Record, expected: int, previous: bytes) -> tuple[Damage | None, bytes, dict[str, Any]]:
    seq = row["seq"]
    if seq != expected:
        if seq > expected:
            return Damage(expected, MISSING_ROW, f"rows {expected}..{seq - 1} are missing"), previous, {}
        return Damage(seq, DUPLICATE_SEQ, "a second row claims this seq"), previous, {}
    text = row["record"]
    try:
        record = orjson.loads(text)
        if not isinstance(record, dict):
            raise ValueError("not an object")
    except ValueError:
        return Damage(seq, MALFORMED_RECORD, "the stored record is not a JSON object"), previous, {}
    try:
        check_format_version(record)
    except UnsupportedFormatVersion:
        return Damage(seq, UNSUPPORTED_VERSION, f"record declares format version {record.get('v')!r}"), previous, {}
    if type(record.get("seq")) is not int or record["seq"] != seq:
        return Damage(seq, RECORD_MISMATCH, f"the record at this row says seq {record.get('seq')!r}"), previous, {}
    if record.get("event_id") != str(row["event_id"]):
        return Damage(seq, RECORD_MISMATCH, "the row's event_id differs from its record's"), previous, {}
    if record.get("occurred_at") != format_timestamp(row["occurred_at"]):
        return Damage(seq, RECORD_MISMATCH, "the row's occurred_at differs from its record's"), previous, {}
    leaf = leaf_hash(text.encode("utf-8"))
    if leaf != row["leaf_hash"]:
        return Damage(seq, LEAF_HASH_MISMATCH, "the record's bytes do not hash to the stored leaf hash"), previous, {}
    current = chain_hash(previous, leaf)
    if current != row["chain_hash"]:
        return Damage(seq, CHAIN_HASH_MISMATCH, "the chain hash does not follow from the previous row"), previous, {}
    return None, current, record


def _identifier_hmacs(record: dict[str, Any], keys: ServerKeys) -> list[bytes]:
    identifiers = record.get("patient", {}).get("identifiers", [])
    return [keys.identifier_hmac(i["system"], i["value"]) for i in identifiers]


def _fingerprint(id_hmac: bytes, event_id: UUID) -> int:
    # 60 bits, as the SQL side computes it (15 hex digits fit a bigint).
    return int.from_bytes(hashlib.sha256(id_hmac + event_id.bytes).digest()[:8], "big") >> 4


# Over the whole table in the verifying snapshot: lookup rows are written in
# the same transaction as their event, so the snapshot holds exactly the rows
# of the events it holds, and a row naming no event at all counts too.
_INDEX_FINGERPRINT = """
SELECT count(*) AS n,
       coalesce(sum(
           ('x' || left(encode(sha256(id_hmac || uuid_send(event_id)), 'hex'), 15))::bit(60)::bigint::numeric
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


async def _first_index_mismatch(conn: asyncpg.Connection, log_id: int, upto: int, keys: ServerKeys) -> tuple[int, str]:
    """Walk records and index groups side by side; the first seq whose sets differ."""
    groups = conn.cursor(_INDEX_BY_SEQ, log_id, prefetch=5000).__aiter__()
    group = await anext(groups, None)
    if group is not None and group["seq"] is None:
        return upto, "the patient lookup index has rows naming an event that is not in the log"
    async for row in conn.cursor(
        "SELECT seq, record FROM events WHERE log_id = $1 AND seq < $2 ORDER BY seq", log_id, upto, prefetch=5000
    ):
        seq = row["seq"]
        actual = [bytes(h) for h in group["hmacs"]] if group is not None and group["seq"] == seq else []
        if group is not None and group["seq"] == seq:
            group = await anext(groups, None)
        if sorted(actual) != sorted(_identifier_hmacs(orjson.loads(row["record"]), keys)):
            return int(seq), _INDEX_DIFFERS
    return upto, _INDEX_DIFFERS


_INDEX_DIFFERS = "the patient lookup index differs from the record's identifiers"


async def verify_chain(
    conn: asyncpg.Connection,
    log_id: int,
    log_name: str,
    genesis: bytes,
    progress: Callable[[int, int], None] | None = None,
    keys: ServerKeys | None = None,
) -> VerifyReport:
    """Verify every row of the log; ``progress(done, total)`` is called as it goes.

    With ``keys`` (the server's), the patient lookup index is checked too.
    """
    started = time.perf_counter()
    expected = 0
    previous = genesis
    damage: Damage | None = None
    index_count = index_fp = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total = await conn.fetchval("SELECT coalesce(max(seq) + 1, 0) FROM events WHERE log_id = $1", log_id)
        async for row in conn.cursor(_ROWS, log_id, prefetch=5000):
            damage, current, record = _check_row(row, expected, previous)
            if damage is not None:
                break
            if keys is not None:
                for id_hmac in _identifier_hmacs(record, keys):
                    index_count += 1
                    index_fp += _fingerprint(id_hmac, row["event_id"])
            previous = current
            expected += 1
            if progress is not None and expected % 5000 == 0:
                progress(expected, total)
        if damage is None and keys is not None:
            stored = await conn.fetchrow(_INDEX_FINGERPRINT, log_id)
            assert stored is not None  # an aggregate always returns a row
            if (stored["n"], int(stored["fp"])) != (index_count, index_fp):
                seq, detail = await _first_index_mismatch(conn, log_id, expected, keys)
                damage = Damage(seq, IDENTIFIER_INDEX_MISMATCH, detail)
    if progress is not None:
        progress(expected, total)
    return VerifyReport(
        ok=damage is None,
        log_name=log_name,
        tree_size=total,
        rows_checked=expected,
        head_chain_hash=previous.hex() if expected else None,
        seconds=round(time.perf_counter() - started, 3),
        damage=damage,
    )


async def log_id_for(conn: asyncpg.Connection, log_name: str) -> int | None:
    value = await conn.fetchval("SELECT log_id FROM logs WHERE name = $1", log_name)
    return int(value) if value is not None else None
