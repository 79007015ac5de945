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

import asyncio
import contextlib
import multiprocessing
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import orjson
from auditsvc_sdk.merkle import CompactRange
from auditsvc_sdk.note import NoteError, NoteVerifier, open_checkpoint

from ..keys import ServerKeys
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
    check_range,
    check_range_in_worker,
    identifier_lookup_keys,
    index_sum,
    start_worker,
    text_as_bytes,
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
    "ResumeState",
    "VerifyReport",
    "log_id_for",
    "verify_chain",
]

IDENTIFIER_INDEX_MISMATCH = "identifier_index_mismatch"
CHECKPOINT_ROOT_MISMATCH = "checkpoint_root_mismatch"
CHECKPOINTS_INCONSISTENT = "checkpoints_inconsistent"
CHECKPOINT_SIGNATURE = "checkpoint_signature_invalid"
TRUNCATED = "truncated"
REWRITTEN = "rewritten"
STATE_MISMATCH = "resume_state_mismatch"

SERIAL_RANGE_ROWS = 1 << 16
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


# Index rows grouped by the seq of the event they name; rows naming no
# stored event come first (seq NULL).
_INDEX_BY_SEQ = """
SELECT e.seq, array_agg(ei.id_hmac ORDER BY ei.id_hmac) AS hmacs
FROM event_identifiers ei LEFT JOIN events e ON e.log_id = ei.log_id AND e.event_id = ei.event_id
WHERE ei.log_id = $1 GROUP BY e.seq ORDER BY e.seq NULLS FIRST
"""


async def _first_index_mismatch(
    conn: asyncpg.Connection, log_id: int, upto: int, keys: ServerKeys | None
) -> tuple[int, str]:
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
        key = keys.identifier_key if keys is not None else None
        expected = identifier_lookup_keys(orjson.loads(row["record"]), key) or []
        if sorted(actual) != sorted(expected):
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


def plan_ranges(start: int, total: int, chunk: int) -> list[tuple[int, int]]:
    """Ranges covering ``[start, total)``: ``chunk`` rows (a power of two)
    starting at multiples of ``chunk``, after a first range up to the first
    multiple when ``start`` is not one (a resumed verification)."""
    if chunk.bit_count() != 1:
        raise ValueError("the range size must be a power of two")
    ranges = []
    aligned = min(-(-start // chunk) * chunk, total)
    if aligned > start:
        ranges.append((start, aligned))
    ranges.extend((a, min(a + chunk, total)) for a in range(aligned, total, chunk))
    return ranges


def range_size(rows: int, workers: int) -> int:
    """About eight ranges per worker process, so that the last ones finish
    close together (a worker keeps one connection for all its ranges, so a
    range costs little more than its rows); 65,536 rows in one process (the
    leaves of a range are held in memory)."""
    if workers <= 1:
        return SERIAL_RANGE_ROWS
    return 1 << max(12, min(17, (rows // (workers * 8)).bit_length() - 1))


class _Tree:
    """The log's tree as verified ranges are joined in order."""

    def __init__(self, size: int, frontier: tuple[bytes, ...], chunk: int) -> None:
        self.size, self.frontier, self.chunk = size, frontier, chunk
        self._chunks: CompactRange | None = None  # over C-leaf subtrees, while size is a multiple of C

    def joined(self, task: RangeTask, size: int, frontier: tuple[bytes, ...]) -> CompactRange:
        """The log's tree at ``size`` from a frontier ``task`` reported."""
        if task.base_size == task.start:
            return CompactRange.from_frontier(size, frontier)
        prefix = self._prefix(task)
        if size - task.start == self.chunk:  # the range's whole subtree: it may merge with the prefix
            assert self._chunks is not None
            chunks = self._chunks.copy()
            chunks.append(frontier[0])
            return CompactRange.from_frontier(size, chunks.frontier)
        return CompactRange.from_frontier(size, prefix + frontier)

    def _prefix(self, task: RangeTask) -> tuple[bytes, ...]:
        assert self.size == task.start and task.start % self.chunk == 0
        if self._chunks is None:
            self._chunks = CompactRange.from_frontier(self.size // self.chunk, self.frontier)
        return self._chunks.frontier

    def advance(self, task: RangeTask, result: RangeResult) -> None:
        end = task.start + result.checked
        if task.base_size == task.start:
            self.frontier = result.frontier
        elif result.checked == self.chunk:
            prefix = self._prefix(task)
            assert self._chunks is not None and len(prefix) == len(self._chunks.frontier)
            self._chunks.append(result.frontier[0])
            self.frontier = self._chunks.frontier
        else:
            self.frontier = self._prefix(task) + result.frontier
            self._chunks = None
        self.size = end


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
    dsn: str | None = None,
    workers: int = 1,
    parallel_min_rows: int = PARALLEL_MIN_ROWS,
    range_rows: int | None = None,
    check_index: bool = True,
) -> VerifyReport:
    """Verify every row of the log; ``progress(done, total)`` is called as it goes.

    The patient lookup index is checked against the records (not when
    resuming: it is a whole-table check; not with ``check_index=False``);
    format-1 records need the server's ``keys`` for it. Stored checkpoints are always checked; ``external`` ones
    too; ``trusted_vkeys`` pins the keys their signatures must verify with
    (else the log's stored keys). With ``dsn`` and ``workers > 1``, ranges of
    a large log are checked in that many processes, each reading the same
    snapshot as ``conn``, in ranges of ``range_rows`` (a power of two;
    default: about four per worker) once there are ``parallel_min_rows``.
    """
    started = time.perf_counter()
    start = 0 if resume is None else resume.tree_size
    expected = start
    previous = genesis if resume is None else resume.chain_hash
    base_frontier: tuple[bytes, ...] = () if resume is None else resume.frontier
    damage: Damage | None = None
    index_count = index_fp = 0
    index_known = resume is None and check_index
    fingerprint_key = secrets.token_bytes(16)  # this verification's, for the lookup index fingerprint
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
            roots.at(0, CompactRange(), previous)
        if damage is None:
            parallel = dsn is not None and workers > 1 and total - start >= parallel_min_rows
            chunk = range_rows or range_size(total - start, workers if parallel else 1)
            tasks = [
                RangeTask(
                    log_id,
                    a,
                    b,
                    base_size=0 if a % chunk == 0 else start,
                    base_frontier=() if a % chunk == 0 else base_frontier,
                    previous=previous if a == start else None,
                    points=tuple(sorted(size for size in roots.by_size if a < size <= b)),
                    check_index=index_known,
                    identifier_key=keys.identifier_key if keys is not None else None,
                    fingerprint_key=fingerprint_key,
                )
                for a, b in plan_ranges(start, total, chunk)
            ]
            tree = _Tree(start, base_frontier, chunk)
            fingerprint: list[tuple[int, int]] = []  # the index's, from a worker alongside the ranges
            ranges_run = _run_ranges(
                conn,
                tasks,
                dsn if parallel else None,
                workers,
                total,
                progress,
                (log_id, fingerprint_key) if index_known else None,
                fingerprint,
            )
            async with contextlib.aclosing(ranges_run):
                async for task, result in ranges_run:
                    if result.damage is None and result.first_previous != previous:
                        result.damage = Damage(
                            task.start, CHAIN_HASH_MISMATCH, "the chain hash does not follow from the previous row"
                        )
                    for size, frontier, chain in result.points:
                        if result.damage is None or size <= result.damage.seq:
                            roots.at(size, tree.joined(task, size, frontier), chain)
                    if result.damage is not None:
                        damage = result.damage
                        expected = task.start + result.checked
                        previous = result.last_chain or previous
                        break
                    tree.advance(task, result)
                    previous = result.last_chain
                    expected = task.start + result.checked
                    index_count += result.index_count
                    index_fp += result.index_fp
                    index_known = index_known and result.index_known
        if damage is None:
            # Rows cut off the end or rewritten against a checkpoint say more
            # than the lookup index that no longer matches them.
            damage = roots.damage(expected)
        if damage is None and index_known:
            if not fingerprint:
                fingerprint.append(await index_sum(conn, log_id, fingerprint_key))
            if fingerprint[0] != (index_count, index_fp):
                seq, detail = await _first_index_mismatch(conn, log_id, expected, keys)
                damage = Damage(seq, IDENTIFIER_INDEX_MISMATCH, detail)
            if damage is None:  # the reports' read model, against the records it is derived from
                damage = await check_read_model(conn, log_id, expected)
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
        index_checked=index_known and damage is None,
    )


def _worker_context() -> multiprocessing.context.BaseContext:
    """fork where there is one: a worker is ready at once, with no interpreter
    start and no imports (about 0.3 s each otherwise). A worker opens its own
    event loop and connection (``start_worker``) and runs only
    ``check_range_in_worker`` on them; it touches nothing it inherited."""
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


async def _run_ranges(
    conn: asyncpg.Connection,
    tasks: list[RangeTask],
    dsn: str | None,
    workers: int,
    total: int,
    progress: Callable[[int, int], None] | None,
    index: tuple[int, bytes] | None = None,
    fingerprint: list[tuple[int, int]] | None = None,
) -> AsyncGenerator[tuple[RangeTask, RangeResult], None]:
    """Yield ``(task, result)`` in order: in this process on ``conn`` for one
    range, else in worker processes on the snapshot ``conn`` exports. There,
    with ``index`` (log id, fingerprint key), ``conn`` sums the lookup index's fingerprint from
    the start (so it overlaps the ranges instead of following them) and it is
    appended to ``fingerprint`` once every range is through."""
    if len(tasks) <= 1 or dsn is None:
        report = None if progress is None else (lambda done: progress(done, total))
        async with text_as_bytes(conn):
            for task in tasks:
                yield task, await check_range(conn, task, report)
        return
    snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=_worker_context(),
        initializer=start_worker,
        initargs=(dsn, snapshot),
    )
    # The lookup index's fingerprint is summed by this connection's server
    # process, on the same snapshot, while the workers check the ranges.
    summing: asyncio.Future[tuple[int, int]] | None = None
    if index is not None and fingerprint is not None:
        summing = asyncio.ensure_future(index_sum(conn, *index))
    try:
        pending: list[Awaitable[RangeResult]] = [
            loop.run_in_executor(pool, check_range_in_worker, task) for task in tasks
        ]
        for task, future in zip(tasks, pending, strict=True):
            result = await future
            if progress is not None:
                progress(task.start + result.checked, total)
            yield task, result
        if summing is not None and fingerprint is not None:
            fingerprint.append(await summing)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if summing is not None and not summing.done():
            # Stopped early (damage found): let the query end rather than
            # cancel it, which would abort the caller's transaction.
            with contextlib.suppress(Exception):
                await summing


async def log_id_for(conn: asyncpg.Connection, log_name: str) -> int | None:
    value = await conn.fetchval("SELECT log_id FROM logs WHERE name = $1", log_name)
    return int(value) if value is not None else None
