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

7. Checkpoints: the Merkle root of the first N leaves equals the root of
   every stored checkpoint of size N, and each stored checkpoint's signature
   verifies (with pinned keys when given, else the log's stored keys). A
   checkpoint larger than the log means rows were cut off the end.
8. ``external`` checkpoints (kept outside the database, e.g. by a witness or
   on WORM storage) are checked the same way: this detects a truncated tail
   and a rewrite of the whole chain recomputed consistently, which the rows
   alone cannot show. For such a rewrite the first bad ``seq`` is bracketed:
   it is the size of the last checkpoint the rows still match (the first
   seq no matching checkpoint covers).
9. ``resume``: start from a saved state (the tree frontier and chain hash at
   the last verified checkpoint) instead of seq 0; rows before it are not
   re-read (run a full verification now and then).

The first failure is reported with its ``seq`` and kind. Nothing is taken
from the client's request or from the service's memory: only the database.
"""

from __future__ import annotations

import contextlib
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
from auditsvc_sdk._merkle import CompactRange
from auditsvc_sdk._note import NoteError, NoteVerifier, open_checkpoint

from ..keys import ServerKeys

MISSING_ROW = "missing_row"
DUPLICATE_SEQ = "duplicate_seq"
MALFORMED_RECORD = "malformed_record"
UNSUPPORTED_VERSION = "unsupported_version"
RECORD_MISMATCH = "record_mismatch"
LEAF_HASH_MISMATCH = "leaf_hash_mismatch"
CHAIN_HASH_MISMATCH = "chain_hash_mismatch"
IDENTIFIER_INDEX_MISMATCH = "identifier_index_mismatch"
CHECKPOINT_ROOT_MISMATCH = "checkpoint_root_mismatch"
CHECKPOINTS_INCONSISTENT = "checkpoints_inconsistent"
CHECKPOINT_SIGNATURE = "checkpoint_signature_invalid"
TRUNCATED = "truncated"
REWRITTEN = "rewritten"
STATE_MISMATCH = "resume_state_mismatch"

_ROWS = (
    "SELECT seq, event_id, occurred_at, record, leaf_hash, chain_hash FROM events "
    "WHERE log_id = $1 AND seq >= $2 ORDER BY seq"
)


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
    checkpoints_checked: int = 0
    external_checked: int = 0
    keys_pinned: bool = False
    resumed_from: int = 0
    state: dict[str, Any] | None = None

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


@dataclass(frozen=True)
class CheckpointClaim:
    """A signed checkpoint to check the rows against."""

    tree_size: int
    root_hash: bytes
    note: str
    external: bool  # kept outside the database (the auditor's copy)


@dataclass(frozen=True)
class ResumeState:
    """Where an earlier verification stopped: at a checkpoint it verified."""

    origin: str
    tree_size: int
    chain_hash: bytes
    frontier: tuple[bytes, ...]
    root_hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "auditsvc-verify-state/v1",
            "origin": self.origin,
            "tree_size": self.tree_size,
            "chain_hash": self.chain_hash.hex(),
            "root_hash": self.root_hash.hex(),
            "frontier": [h.hex() for h in self.frontier],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResumeState:
        if data.get("format") != "auditsvc-verify-state/v1":
            raise ValueError("not an auditsvc verification state (format auditsvc-verify-state/v1)")
        try:
            state = cls(
                str(data["origin"]),
                int(data["tree_size"]),
                bytes.fromhex(data["chain_hash"]),
                tuple(bytes.fromhex(h) for h in data["frontier"]),
                bytes.fromhex(data["root_hash"]),
            )
            if CompactRange.from_frontier(state.tree_size, state.frontier).root() != state.root_hash:
                raise ValueError("its frontier does not hash to its root")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed verification state: {exc}") from None
        return state


def check_signatures(claims: list[CheckpointClaim], origin: str, vkeys: list[str]) -> Damage | None:
    """Every claim's note is signed by one of ``vkeys`` and names ``origin``."""
    verifiers = []
    for vkey in vkeys:
        with contextlib.suppress(NoteError):
            verifiers.append(NoteVerifier.from_vkey(vkey))
    for claim in claims:
        try:
            cp, _ = open_checkpoint(claim.note, verifiers, origin=origin)
        except NoteError as exc:
            where = "external" if claim.external else "stored"
            return Damage(claim.tree_size, CHECKPOINT_SIGNATURE, f"{where} checkpoint of size {claim.tree_size}: {exc}")
        if (cp.size, cp.root_hash) != (claim.tree_size, claim.root_hash):
            return Damage(claim.tree_size, CHECKPOINT_SIGNATURE, "a stored checkpoint's columns differ from its note")
    return None


class _Roots:
    """Compares the running Merkle root with each claimed checkpoint as the
    rows stream past, remembering the last size that matched."""

    def __init__(self, claims: list[CheckpointClaim], start: int) -> None:
        self.by_size: dict[int, list[CheckpointClaim]] = {}
        for claim in claims:
            if claim.tree_size >= start:
                self.by_size.setdefault(claim.tree_size, []).append(claim)
        self.matched = start
        self.good: list[int] = []
        self.bad: list[tuple[CheckpointClaim, bytes]] = []
        self.snapshot: tuple[int, bytes, tuple[bytes, ...], bytes] | None = None

    def at(self, size: int, tree: CompactRange, chain: bytes) -> None:
        root = tree.root()
        wrong = [claim for claim in self.by_size[size] if claim.root_hash != root]
        self.bad.extend((claim, root) for claim in wrong)
        if not wrong:
            self.good.append(size)
            if len(self.bad) == 0:
                self.matched = size
                self.snapshot = (size, chain, tree.frontier, root)

    def damage(self, rows: int) -> Damage | None:
        if self.bad:
            claim, root = self.bad[0]
            if not claim.external and any(size > claim.tree_size for size in self.good):
                return Damage(
                    self.matched,
                    CHECKPOINTS_INCONSISTENT,
                    f"the checkpoint of size {claim.tree_size} (root {claim.root_hash.hex()}) is contradicted by a "
                    f"later signed checkpoint, which the rows match (root here {root.hex()})",
                )
            where = "an external" if claim.external else "a stored"
            return Damage(
                self.matched,
                REWRITTEN if claim.external else CHECKPOINT_ROOT_MISMATCH,
                f"the first {claim.tree_size} rows hash to root {root.hex()}, but {where} checkpoint of that size "
                f"says {claim.root_hash.hex()}: rows were rewritten (the first difference is at or after seq "
                f"{self.matched}, before seq {claim.tree_size})",
            )
        beyond = sorted(size for size in self.by_size if size > rows)
        if beyond:
            claim = self.by_size[beyond[-1]][0]
            where = "an external" if claim.external else "a stored"
            return Damage(
                rows,
                TRUNCATED,
                f"{where} checkpoint commits to {claim.tree_size} events but the log holds {rows}: the tail is gone",
            )
        return None


async def verify_chain(
    conn: asyncpg.Connection,
    log_id: int,
    log_name: str,
    genesis: bytes,
    progress: Callable[[int, int], None] | None = None,
    keys: ServerKeys | None = None,
    *,
    trusted_vkeys: list[str] | None = None,
    external: list[CheckpointClaim] | None = None,
    resume: ResumeState | None = None,
) -> VerifyReport:
    """Verify every row of the log; ``progress(done, total)`` is called as it goes.

    With ``keys`` (the server's), the patient lookup index is checked too
    (not when resuming: it is a whole-table check). Stored checkpoints are
    always checked; ``external`` ones too; ``trusted_vkeys`` pins the keys
    their signatures must verify with (else the log's stored keys).
    """
    started = time.perf_counter()
    start = 0 if resume is None else resume.tree_size
    expected = start
    previous = genesis if resume is None else resume.chain_hash
    tree = CompactRange() if resume is None else CompactRange.from_frontier(resume.tree_size, resume.frontier)
    damage: Damage | None = None
    index_count = index_fp = 0
    check_index = keys is not None and resume is None
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total = await conn.fetchval("SELECT coalesce(max(seq) + 1, 0) FROM events WHERE log_id = $1", log_id)
        stored = [
            CheckpointClaim(int(r["tree_size"]), bytes(r["root_hash"]), r["note"], external=False)
            for r in await conn.fetch(
                "SELECT tree_size, root_hash, note FROM checkpoints WHERE log_id = $1 ORDER BY tree_size", log_id
            )
        ]
        claims = stored + list(external or [])
        vkeys = trusted_vkeys
        if vkeys is None:
            vkeys = [r["vkey"] for r in await conn.fetch("SELECT vkey FROM verifier_keys WHERE log_id = $1", log_id)]
        if resume is not None:
            if resume.origin != log_name:
                damage = Damage(start, STATE_MISMATCH, f"the saved state is for log {resume.origin!r}")
            elif start > 0:
                row = await conn.fetchrow(
                    "SELECT chain_hash FROM events WHERE log_id = $1 AND seq = $2", log_id, start - 1
                )
                if row is None or bytes(row["chain_hash"]) != resume.chain_hash:
                    damage = Damage(
                        start - 1, STATE_MISMATCH, "the row where the last verification stopped has changed"
                    )
        roots = _Roots(claims, start)
        if 0 in roots.by_size and start == 0:
            roots.at(0, tree, previous)
        if damage is None:
            async for row in conn.cursor(_ROWS, log_id, start, prefetch=5000):
                damage, current, record = _check_row(row, expected, previous)
                if damage is not None:
                    break
                if check_index:
                    assert keys is not None
                    for id_hmac in _identifier_hmacs(record, keys):
                        index_count += 1
                        index_fp += _fingerprint(id_hmac, row["event_id"])
                tree.append(row["leaf_hash"])
                previous = current
                expected += 1
                if expected in roots.by_size:
                    roots.at(expected, tree, previous)
                if progress is not None and expected % 5000 == 0:
                    progress(expected, total)
        if damage is None:
            # Rows cut off the end or rewritten against a checkpoint say more
            # than the lookup index that no longer matches them.
            damage = roots.damage(expected)
        if damage is None and check_index:
            assert keys is not None
            fp_row = await conn.fetchrow(_INDEX_FINGERPRINT, log_id)
            assert fp_row is not None  # an aggregate always returns a row
            if (fp_row["n"], int(fp_row["fp"])) != (index_count, index_fp):
                seq, detail = await _first_index_mismatch(conn, log_id, expected, keys)
                damage = Damage(seq, IDENTIFIER_INDEX_MISMATCH, detail)
    if damage is None:
        damage = check_signatures(claims, log_name, vkeys)
    if progress is not None:
        progress(expected, total)
    state = None
    if damage is None and roots.snapshot is not None:
        size, chain, frontier, root = roots.snapshot
        state = ResumeState(log_name, size, chain, frontier, root).to_json()
    elif damage is None and resume is not None:
        state = resume.to_json()
    return VerifyReport(
        ok=damage is None,
        log_name=log_name,
        tree_size=total,
        rows_checked=expected - start,
        head_chain_hash=previous.hex() if expected else None,
        seconds=round(time.perf_counter() - started, 3),
        damage=damage,
        checkpoints_checked=len(stored),
        external_checked=len(external or []),
        keys_pinned=trusted_vkeys is not None,
        resumed_from=start,
        state=state,
    )


async def log_id_for(conn: asyncpg.Connection, log_name: str) -> int | None:
    value = await conn.fetchval("SELECT log_id FROM logs WHERE name = $1", log_name)
    return int(value) if value is not None else None
