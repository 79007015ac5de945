"""The append transaction: the one serial point of the log.

One call appends a whole group of batches under a transaction-scoped
advisory lock on the log, so every process, pod and thread that appends
produces one gapless sequence and the chain never forks. The lock is taken
once per group, not per event (group commit). The primary key on
``(log_id, seq)`` is the backstop: were two writers ever to compute the same
``seq``, one transaction would fail rather than fork the chain.

Only what depends on ``seq`` happens under the lock: reading the head,
hashing the records and writing the ``events`` and ``event_ids`` rows. The
lookup, identifier and link rows are written earlier in the same
transaction, so the lock is held for about half as long as the whole append.

``events`` is partitioned by ``seq`` range (migration 0010). Partitions are
created outside the lock: after a commit, when the head comes within one
partition of the last one's end; and should a group still find no room (a
group larger than a partition, or another process's appends), it rolls
back, the partitions are extended, and it runs again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from auditsvc_sdk import chain_hash, leaf_hash
from auditsvc_sdk.chain import format_timestamp

from ..domain.append_types import EventResult, Head, PendingBatch, PreparedEvent
from .coverage import PairKey, new_pairs, record_pairs
from .flows import flow_delta, record_flows
from .locks import APPEND_LOCK_CLASS, xact_lock
from .partitions import NoPartitionRoom, Partitions, extend_partitions, partition_top
from .readmodel import FACT_COLUMNS, PATIENT_COLUMNS
from .session import Connection


class SeenCache:
    """Identifier and link keys this process has seen committed.

    ``patient_identifiers`` and ``identifier_links`` only ever grow, so a key
    known to be stored never needs inserting again; skipping it spares the
    database an ON CONFLICT probe per identifier of every event, which under
    load is most of them (the same patients recur all day). Bounded: when
    full it is simply emptied, which costs only redundant, harmless inserts.
    """

    def __init__(self, max_entries: int = 500_000) -> None:
        self._max = max_entries
        self._seen: set[object] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def add_all(self, keys: Iterable[object]) -> None:
        self._seen.update(keys)
        if len(self._seen) > self._max:
            self._seen.clear()


async def read_head(conn: Connection, log_id: int, genesis: bytes) -> Head:
    row = await conn.fetchrow(
        "SELECT seq, chain_hash FROM events WHERE log_id = $1 ORDER BY seq DESC LIMIT 1",
        log_id,
    )
    if row is None:
        return Head(0, genesis)
    return Head(row["seq"] + 1, bytes(row["chain_hash"]))


def _identifier_rows(
    events: Iterable[PreparedEvent], seen: SeenCache | None
) -> tuple[dict[bytes, tuple[str, str]], dict[tuple[bytes, bytes], None]]:
    """Identifier and link rows for the events' identifiers, less those this
    process has already seen committed."""
    known: dict[bytes, tuple[str, str]] = {}
    links: dict[tuple[bytes, bytes], None] = {}
    for event in events:
        first = event.identifiers[0][0]
        for hmac_, system, value in event.identifiers:
            if seen is None or hmac_ not in seen:
                known.setdefault(hmac_, (system, value))
            if hmac_ != first and (seen is None or (first, hmac_) not in seen):
                links[(first, hmac_)] = None
                links[(hmac_, first)] = None
    return known, links


async def _insert_identifiers(
    conn: Connection,
    log_id: int,
    known: dict[bytes, tuple[str, str]],
    links: dict[tuple[bytes, bytes], None],
) -> None:
    # In key order: two appenders that both bring a new identifier wait for
    # each other's commit in one direction only, so they cannot deadlock.
    if known:
        await conn.execute(
            "INSERT INTO patient_identifiers (log_id, id_hmac, system, value_enc) "
            "SELECT $1, h, s, v FROM unnest($2::bytea[], $3::text[], $4::text[]) AS u(h, s, v) "
            "ORDER BY h ON CONFLICT DO NOTHING",
            log_id,
            list(known),
            [v[0] for v in known.values()],
            [v[1] for v in known.values()],
        )
    if links:
        await conn.execute(
            "INSERT INTO identifier_links (log_id, a, b) "
            "SELECT $1, a, b FROM unnest($2::bytea[], $3::bytea[]) AS u(a, b) "
            "ORDER BY a, b ON CONFLICT DO NOTHING",
            log_id,
            [a for a, _ in links],
            [b for _, b in links],
        )


# A group fails with a unique violation only when another transaction
# committed one of its event_ids after this one looked (a resend racing the
# original); the retry then finds it stored and answers it ``duplicate``.
UNIQUE_RACE_RETRIES = 3
# Each retry for want of a partition first creates the partitions it lacked;
# only other processes' appends racing past them (partitions narrower than
# a few groups, as in tests) make it need another.
NO_ROOM_RETRIES = 10


async def append_group(
    conn: Connection,
    log_id: int,
    genesis: bytes,
    batches: Sequence[PendingBatch],
    seen: SeenCache | None = None,
    partitions: Partitions | None = None,
) -> tuple[list[list[EventResult]], Head]:
    """Append ``batches`` in one transaction; returns per-batch results and the new head.

    Events whose ``event_id`` is already stored (or appears earlier in the
    group) are answered ``duplicate`` with the stored ``seq`` and add nothing.
    ``partitions``: what the caller knows of ``events``' partitions (an
    appender keeps one across calls); partitions are created as needed.
    """
    partitions = partitions if partitions is not None else Partitions()
    if partitions.top == 0:  # first use: where the partitions end, and a first one if there is none
        partitions.top = await partition_top(conn)
        if partitions.top == 0:  # no partition, so no event yet: room for this group from seq 0
            size = sum(len(b.events) for b in batches)
            partitions.top = await extend_partitions(conn, size + (partitions.rows or 0), partitions.rows)
    races = no_room = 0
    while True:
        try:
            results, head = await _append_group_once(conn, log_id, genesis, batches, seen, partitions)
        except asyncpg.UniqueViolationError:
            races += 1
            if races == UNIQUE_RACE_RETRIES:
                raise
            continue
        except NoPartitionRoom as full:
            # Rolled back and the lock released: extend here, then append again.
            no_room += 1
            if no_room == NO_ROOM_RETRIES:
                raise
            partitions.top = await extend_partitions(conn, full.needed + (partitions.rows or 0), partitions.rows)
            continue
        if partitions.wants_room(head.tree_size):
            partitions.top = await extend_partitions(conn, head.tree_size + (partitions.rows or 0), partitions.rows)
        return results, head


async def _check_room(conn: Connection, partitions: Partitions, end: int) -> None:
    """Under the lock: the partitions cover every ``seq < end``, or NoPartitionRoom."""
    if end > partitions.top:
        partitions.top = await partition_top(conn)  # another process may have extended them
        if end > partitions.top:
            raise NoPartitionRoom(end)


async def _append_group_once(
    conn: Connection,
    log_id: int,
    genesis: bytes,
    batches: Sequence[PendingBatch],
    seen: SeenCache | None,
    partitions: Partitions,
) -> tuple[list[list[EventResult]], Head]:
    # The lock is held for as little as possible. Everything that does not
    # depend on seq is written first, in the same transaction: the lookup
    # rows of the events not yet stored, and the identifier and link rows.
    # The primary key of event_ids, (log_id, event_id), is what guarantees
    # an event is stored once; the look-up before the lock only spares the
    # common resend its rows.
    all_ids = list({e.event_id for b in batches for e in b.events})
    async with conn.transaction():
        stored: dict[UUID, int] = {
            r["event_id"]: r["seq"]
            for r in await conn.fetch(
                "SELECT event_id, seq FROM event_ids WHERE log_id = $1 AND event_id = ANY($2::uuid[])",
                log_id,
                all_ids,
            )
        }
        fresh: dict[UUID, PreparedEvent] = {}
        for batch in batches:
            for event in batch.events:
                if event.event_id not in stored:
                    fresh.setdefault(event.event_id, event)
        known, links = _identifier_rows(fresh.values(), seen)
        await _insert_identifiers(conn, log_id, known, links)
        if fresh:
            # In key order, so that two groups holding the same resent event
            # wait for each other in one direction only.
            await conn.copy_records_to_table(
                "event_identifiers",
                records=sorted({(log_id, h, e.event_id) for e in fresh.values() for h, _, _ in e.identifiers}),
                columns=("log_id", "id_hmac", "event_id"),
            )
        await xact_lock(conn, APPEND_LOCK_CLASS, log_id)
        # Read committed: each statement after the lock sees every append
        # committed before we obtained it.
        head = await read_head(conn, log_id, genesis)
        if fresh:
            await _check_room(conn, partitions, head.tree_size + len(fresh))
        received_at = format_timestamp(datetime.now(UTC))
        seq = head.tree_size
        previous = head.chain_hash
        event_rows: list[tuple[Any, ...]] = []
        fact_rows: list[tuple[Any, ...]] = []  # the read model (migration 0006)
        patient_rows: list[tuple[Any, ...]] = []
        results: list[list[EventResult]] = []
        for batch in batches:
            batch_results: list[EventResult] = []
            for event in batch.events:
                existing = stored.get(event.event_id)
                if existing is not None:
                    batch_results.append(EventResult(event.event_id, "duplicate", existing))
                    continue
                leaf_bytes = event.template.leaf_bytes(seq=seq, received_at=received_at)
                leaf = leaf_hash(leaf_bytes)
                previous = chain_hash(previous, leaf)
                event_rows.append(
                    (log_id, seq, event.event_id, event.occurred_at, leaf_bytes.decode("utf-8"), leaf, previous)
                )
                fact_rows.append((log_id, seq, event.occurred_at, *event.facts))
                patient_rows.extend((log_id, h, event.occurred_at, seq) for h, _, _ in event.identifiers)
                stored[event.event_id] = seq
                batch_results.append(EventResult(event.event_id, "accepted", seq))
                seq += 1
            results.append(batch_results)
        pairs: dict[PairKey, tuple[Any, ...]] = {}
        flows = flow_delta((), None)
        if event_rows:
            await conn.copy_records_to_table(
                "event_ids", records=[(r[0], r[2], r[1]) for r in event_rows], columns=("log_id", "event_id", "seq")
            )
            await conn.copy_records_to_table(
                "events",
                records=event_rows,
                columns=("log_id", "seq", "event_id", "occurred_at", "record", "leaf_hash", "chain_hash"),
            )
            await conn.copy_records_to_table("event_facts", records=fact_rows, columns=FACT_COLUMNS)
            await conn.copy_records_to_table("patient_events", records=patient_rows, columns=PATIENT_COLUMNS)
            # The coverage report's pairs (migration 0008): one insert in a pair's life.
            pairs = new_pairs(fact_rows, seen)
            if pairs:
                await record_pairs(conn, pairs)
            # The flow map's rollup (migration 0015): counts per day and pair.
            flows = flow_delta(fact_rows, seen)
            await record_flows(conn, log_id, flows)
    if seen is not None:  # only now: the rows are committed
        seen.add_all(known)
        seen.add_all(links)
        seen.add_all(pairs)
        seen.add_all(flows.elements)
    return results, Head(seq, previous)
