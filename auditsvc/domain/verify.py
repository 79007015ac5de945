"""Full verification of the stored chain, recomputed from rows read back.

Steps, per row in ``seq`` order (docs/chain-format.md, "Verifying"):

1. ``seq`` is the next expected value (a gap is a deleted row; a repeat a
   forged one).
2. The stored record is JSON and declares record format 1 or 2 (``v``).
3. The record's ``seq``, ``event_id`` and ``occurred_at`` equal the row's
   indexed columns (the columns reports search by are what was hashed).
4. SHA-256(0x00 || stored record bytes) equals the stored ``leaf_hash``.
5. SHA-256(tag || previous chain hash || leaf hash) equals ``chain_hash``.
6. With the server's keys: the patient lookup index (``event_identifiers``)
   holds exactly the keyed hashes of each record's identifiers. A superuser
   who deletes index rows would hide accesses from reports without touching
   the chain; this catches it. The comparison streams a multiset fingerprint
   and only on a mismatch walks both sides to name the first bad ``seq``.
   Then the reports' read model (``event_facts``, ``patient_events``)
   against the records (domain/verify_readmodel.py); ``check_index=False``
   skips it too.

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
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson
from auditsvc_sdk.merkle import CompactRange

from ..keys import ServerKeys
from ..store import events as store_events
from ..store import tree as store_tree
from ..store import verify as store
from ..store.session import Connection
from .log_ref import LogRef
from .verify_checkpoints import (
    STATE_MISMATCH,
    CheckpointClaim,
    CheckpointRoots,
    ResumeState,
    check_signatures,
)
from .verify_flows import check_flow_rollup
from .verify_pairs import check_system_pairs
from .verify_parallel import JoinedTree, plan_ranges, range_size, run_ranges
from .verify_range import (
    CHAIN_HASH_MISMATCH,
    DUPLICATE_SEQ,
    LEAF_HASH_MISMATCH,
    MALFORMED_RECORD,
    MISSING_ROW,
    RECORD_MISMATCH,
    UNSUPPORTED_VERSION,
    Damage,
    RangeResult,
    RangeTask,
    identifier_lookup_keys,
)
from .verify_readmodel import check_read_model

__all__ = [
    "CHAIN_HASH_MISMATCH",
    "DUPLICATE_SEQ",
    "LEAF_HASH_MISMATCH",
    "MALFORMED_RECORD",
    "MISSING_ROW",
    "RECORD_MISMATCH",
    "UNSUPPORTED_VERSION",
    "CheckpointClaim",
    "Damage",
    "LogRef",
    "ResumeState",
    "VerifyOptions",
    "VerifyReport",
    "plan_ranges",
    "range_size",
    "verify_chain",
]

IDENTIFIER_INDEX_MISMATCH = "identifier_index_mismatch"

PARALLEL_MIN_ROWS = 100_000
"""Fewer rows than this are verified in this process: starting worker
processes costs more than it saves."""


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
    index_checked: bool = False

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.damage is not None:
            out["first_bad_seq"] = self.damage.seq
            out["kind"] = self.damage.kind
        return out


@dataclass(frozen=True)
class VerifyOptions:
    """How to verify; the defaults check everything, in this process.

    ``keys``: the server's keys, which format-1 records need for the lookup
    index check (verification never opens identifiers). ``check_index``:
    check the patient lookup index against the records (a whole-table check,
    so not when resuming). ``trusted_vkeys``: pin the keys checkpoint
    signatures must verify with (else the log's stored keys). ``external``:
    checkpoints kept outside the database. ``resume``: start from a saved
    state. With ``dsn`` and ``workers > 1``, the ranges of a log of at least
    ``parallel_min_rows`` rows are checked in that many processes, each
    reading the same snapshot, in ranges of ``range_rows`` (a power of two;
    default ``range_size``).
    """

    keys: ServerKeys | None = None
    check_index: bool = True
    trusted_vkeys: tuple[str, ...] | None = None
    external: tuple[CheckpointClaim, ...] = ()
    resume: ResumeState | None = None
    dsn: str | None = None
    workers: int = 1
    parallel_min_rows: int = PARALLEL_MIN_ROWS
    range_rows: int | None = None

    def __post_init__(self) -> None:
        # Lists are welcome; the options hold tuples so that they stay frozen.
        if self.trusted_vkeys is not None:
            object.__setattr__(self, "trusted_vkeys", tuple(self.trusted_vkeys))
        object.__setattr__(self, "external", tuple(self.external))


async def verify_chain(
    conn: Connection,
    log: LogRef,
    options: VerifyOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify every row of ``log`` (steps 1 to 9 above) in one read-only
    snapshot of ``conn``; ``progress(done, total)`` is called as it goes."""
    options = options or VerifyOptions()
    started = time.perf_counter()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        plan = await _plan(conn, log, options)
        walk = _Walk(plan)
        damage = plan.damage
        if damage is None:
            damage = await walk.run(conn, log, options, progress)
        if damage is None:
            damage = await _judge_rows(conn, log, options, plan, walk)
    if damage is None:
        damage = check_signatures(plan.claims, log.name, plan.vkeys)
    if progress is not None:
        progress(walk.expected, plan.total)
    return _report(log, options, plan, walk, damage, time.perf_counter() - started)


# --- plan: what there is to check, and in which ranges -----------------------------------


@dataclass(frozen=True)
class _Plan:
    start: int  # the first seq to read (a resumed verification's saved size)
    previous: bytes  # the chain hash before ``start``
    frontier: tuple[bytes, ...]  # the tree's frontier at ``start``
    total: int  # rows in the snapshot
    stored: tuple[CheckpointClaim, ...]
    claims: tuple[CheckpointClaim, ...]  # stored and external
    vkeys: tuple[str, ...]  # what checkpoint signatures must verify with
    check_index: bool
    fingerprint_key: bytes  # this verification's, for the lookup index fingerprint
    damage: Damage | None = None  # the saved state does not fit the log: nothing to run
    chunk: int = 0
    parallel: bool = False
    tasks: tuple[RangeTask, ...] = ()


async def _plan(conn: Connection, log: LogRef, options: VerifyOptions) -> _Plan:
    resume = options.resume
    total = await store_events.committed_size(conn, log.log_id)
    stored = tuple(
        CheckpointClaim(cp.tree_size, cp.root_hash, cp.note, external=False)
        for cp in await store_tree.checkpoints(conn, log.log_id)
    )
    vkeys = options.trusted_vkeys
    if vkeys is None:
        vkeys = tuple(await store_tree.verifier_keys(conn, log.log_id))
    plan = _Plan(
        start=0 if resume is None else resume.tree_size,
        previous=log.genesis if resume is None else resume.chain_hash,
        frontier=() if resume is None else resume.frontier,
        total=total,
        stored=stored,
        claims=stored + options.external,
        vkeys=vkeys,
        check_index=resume is None and options.check_index,
        fingerprint_key=secrets.token_bytes(16),
    )
    damage = await _resume_damage(conn, log, resume)
    if damage is not None:
        return replace(plan, damage=damage)
    parallel = options.dsn is not None and options.workers > 1 and total - plan.start >= options.parallel_min_rows
    chunk = options.range_rows or range_size(total - plan.start, options.workers if parallel else 1)
    return replace(plan, chunk=chunk, parallel=parallel, tasks=tuple(_tasks(log, options, plan, chunk)))


async def _resume_damage(conn: Connection, log: LogRef, resume: ResumeState | None) -> Damage | None:
    """9. A saved state must be this log's, and its last row unchanged."""
    if resume is None:
        return None
    if resume.origin != log.name:
        return Damage(resume.tree_size, STATE_MISMATCH, f"the saved state is for log {resume.origin!r}")
    if resume.tree_size > 0:
        last = await store_events.chain_hash_at(conn, log.log_id, resume.tree_size - 1)
        if last != resume.chain_hash:
            return Damage(
                resume.tree_size - 1, STATE_MISMATCH, "the row where the last verification stopped has changed"
            )
    return None


def _tasks(log: LogRef, options: VerifyOptions, plan: _Plan, chunk: int) -> Iterable[RangeTask]:
    """A range starting at a multiple of ``chunk`` is a perfect subtree of
    its own; the first range of a resumed verification extends the saved
    tree. Only the first range is given the chain hash to start from; the
    others read it from the row before them."""
    sizes = sorted({claim.tree_size for claim in plan.claims if claim.tree_size >= plan.start})
    for a, b in plan_ranges(plan.start, plan.total, chunk):
        aligned = a % chunk == 0
        yield RangeTask(
            log.log_id,
            a,
            b,
            base_size=0 if aligned else plan.start,
            base_frontier=() if aligned else plan.frontier,
            previous=plan.previous if a == plan.start else None,
            points=tuple(size for size in sizes if a < size <= b),
            check_index=plan.check_index,
            identifier_key=options.keys.identifier_key if options.keys is not None else None,
            fingerprint_key=plan.fingerprint_key,
        )


# --- run: the ranges, in order, joined into one chain and one tree ------------------------


@dataclass
class _Walk:
    """How far the rows held as the ranges come in, in order."""

    plan: _Plan
    expected: int = 0  # rows that held, from seq 0
    previous: bytes = b""  # the chain hash after them
    roots: CheckpointRoots = field(init=False)
    index_known: bool = False  # every record's lookup keys were summed
    index_count: int = 0
    index_fp: int = 0
    fingerprint: list[tuple[int, int]] = field(default_factory=list)  # the index table's, when summed alongside

    def __post_init__(self) -> None:
        plan = self.plan
        self.expected, self.previous, self.index_known = plan.start, plan.previous, plan.check_index
        self.roots = CheckpointRoots(plan.claims, plan.start)
        if 0 in self.roots.by_size and plan.start == 0:
            self.roots.at(0, CompactRange(), self.previous)

    async def run(
        self,
        conn: Connection,
        log: LogRef,
        options: VerifyOptions,
        progress: Callable[[int, int], None] | None,
    ) -> Damage | None:
        """Steps 1 to 6 over every range, and the running roots for 7 and 8;
        the first damage in the rows."""
        plan = self.plan
        tree = JoinedTree(plan.start, plan.frontier, plan.chunk)
        ranges = run_ranges(
            conn,
            list(plan.tasks),
            options.dsn if plan.parallel else None,
            options.workers,
            plan.total,
            progress,
            (log.log_id, plan.fingerprint_key) if self.index_known else None,
            self.fingerprint,
        )
        async with contextlib.aclosing(ranges):
            async for task, result in ranges:
                damage = self._join(tree, task, result)
                if damage is not None:
                    return damage
        return None

    def _join(self, tree: JoinedTree, task: RangeTask, result: RangeResult) -> Damage | None:
        """One range's result onto the rows before it."""
        if result.damage is None and result.first_previous != self.previous:
            # The range chained from the stored hash before it, which is
            # not the one the rows before it end on.
            result.damage = Damage(
                task.start, CHAIN_HASH_MISMATCH, "the chain hash does not follow from the previous row"
            )
        for size, frontier, chain in result.points:
            if result.damage is None or size <= result.damage.seq:
                self.roots.at(size, tree.joined(task, size, frontier), chain)
        self.expected = task.start + result.checked
        if result.damage is not None:
            self.previous = result.last_chain or self.previous
            return result.damage
        tree.advance(task, result)
        self.previous = result.last_chain
        self.index_count += result.index_count
        self.index_fp += result.index_fp
        self.index_known = self.index_known and result.index_known
        return None


# --- judge: what the rows as a whole say ---------------------------------------------------


async def _judge_rows(conn: Connection, log: LogRef, options: VerifyOptions, plan: _Plan, walk: _Walk) -> Damage | None:
    """7-8 against the checkpoints, then 6 against the lookup index table
    and the read model.

    Rows cut off the end or rewritten against a checkpoint say more than the
    lookup index that no longer matches them, so they come first."""
    damage = walk.roots.damage(walk.expected)
    if damage is not None or not walk.index_known:
        return damage
    if not walk.fingerprint:
        walk.fingerprint.append(await store.index_sum(conn, log.log_id, plan.fingerprint_key))
    if walk.fingerprint[0] != (walk.index_count, walk.index_fp):
        seq, detail = await _first_index_mismatch(conn, log.log_id, walk.expected, options.keys)
        return Damage(seq, IDENTIFIER_INDEX_MISMATCH, detail)
    # The reports' read model, against the records it is derived from; the coverage pairs against it.
    damage = await check_read_model(
        conn, log.log_id, walk.expected, options.dsn if plan.parallel else None, options.workers
    )
    damage = damage or await check_system_pairs(conn, log.log_id, walk.expected)
    return damage or await check_flow_rollup(conn, log.log_id, walk.expected)


_INDEX_DIFFERS = "the patient lookup index differs from the record's identifiers"


async def _first_index_mismatch(conn: Connection, log_id: int, upto: int, keys: ServerKeys | None) -> tuple[int, str]:
    """Walk records and index groups side by side; the first seq whose sets differ."""
    key = keys.identifier_key if keys is not None else None
    async with contextlib.aclosing(store.index_groups(conn, log_id)) as groups:
        group = await anext(groups, None)
        if group is not None and group[0] is None:
            return upto, "the patient lookup index has rows naming an event that is not in the log"
        async for seq, record in store.records_before(conn, log_id, upto):
            actual: list[bytes] = []
            if group is not None and group[0] == seq:
                actual = group[1]
                group = await anext(groups, None)
            expected = identifier_lookup_keys(orjson.loads(record), key) or []
            if sorted(actual) != sorted(expected):
                return seq, _INDEX_DIFFERS
    return upto, _INDEX_DIFFERS


def _report(
    log: LogRef, options: VerifyOptions, plan: _Plan, walk: _Walk, damage: Damage | None, seconds: float
) -> VerifyReport:
    state = None
    if damage is None:
        resume = walk.roots.resume_state(log.name) or options.resume
        state = None if resume is None else resume.to_json()
    return VerifyReport(
        ok=damage is None,
        log_name=log.name,
        tree_size=plan.total,
        rows_checked=walk.expected - plan.start,
        head_chain_hash=walk.previous.hex() if walk.expected else None,
        seconds=round(seconds, 3),
        damage=damage,
        checkpoints_checked=len(plan.stored),
        external_checked=len(options.external),
        keys_pinned=options.trusted_vkeys is not None,
        resumed_from=plan.start,
        state=state,
        index_checked=walk.index_known and damage is None,
    )
