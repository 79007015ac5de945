"""The coverage report's and the registry's statements read rows bounded by
the systems, emitters and pairs (times the rate sample k), never by the log,
whatever plan PostgreSQL caches.

A log of 100,000 events (20 sources, 7 destinations, 5 emitters) is written
straight into the tables, with 10 registry events for 5 systems, ANALYZEd;
each statement is prepared and run more than ten times on one connection
(the generic plan in use), then checked node by node."""

from __future__ import annotations

import hashlib

import asyncpg

from auditsvc.domain.systems import REGISTRY_KIND
from auditsvc.store import coverage as q
from auditsvc.store import systems as registry

from .plan_bounds import bounded, log_filled_by, on

EVENTS = 100_000
LOG = 1
K = 100
SOURCES = [f"sys-{i}" for i in range(20)]
DESTINATIONS = [f"dst-{i}" for i in range(7)]
EMITTERS = [f"emitter-{i}" for i in range(5)]
REGISTRY_EVENTS = 10  # systems reg-0 .. reg-4, twice each

FILL = (
    "INSERT INTO logs (log_id, name, format_version) VALUES (1, 'plans.test/log', 2)",
    # Eleven partitions of events (migration 0010): rows are read from them by seq.
    "SELECT auditsvc_extend_partitions(110000, 10000)",
    f"""
    INSERT INTO events (log_id, seq, event_id, occurred_at, record, leaf_hash, chain_hash)
    SELECT 1, i, gen_random_uuid(), timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
           CASE WHEN i >= {EVENTS}
                THEN '{{"seq":' || i || ',"attributes":{{"system_id":"reg-' || (i % 5) || '"}}}}'
                ELSE '{{"seq":' || i || '}}' END,
           sha256(int8send(i)), sha256(int8send(-i))
    FROM generate_series(0, {EVENTS + REGISTRY_EVENTS - 1}) AS i
    """,
    f"""
    INSERT INTO event_facts
    SELECT 1, 0, false, i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
           'hl7v2-message', 'R', NULL, 'sys-' || (i % 20), 'dst-' || (i % 7), 'actor-' || (i % 500), 'user',
           NULL, NULL, 'emitter-' || (i % 5), ARRAY['PID']
    FROM generate_series(0, {EVENTS - 1}) AS i
    """,
    f"""
    INSERT INTO event_facts
    SELECT 1, 0, false, i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
           'system-registry-change', 'U', NULL, 'auditsvc', 'auditsvc:system-registry', 'admin-1', 'user',
           'admin', NULL, 'admin-1', ARRAY['SystemRegistryEntry']
    FROM generate_series({EVENTS}, {EVENTS + REGISTRY_EVENTS - 1}) AS i
    """,
    f"""
    INSERT INTO patient_events (log_id, id_hmac, occurred_at, seq)
    SELECT 1, sha256(convert_to('patient-' || (i % 2000), 'UTF8')),
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute', i
    FROM generate_series(0, {EVENTS - 1}) AS i
    """,
    f"""
    INSERT INTO patient_events (log_id, id_hmac, occurred_at, seq)
    SELECT 1, sha256(convert_to('reg-' || (i % 5), 'UTF8')),
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute', i
    FROM generate_series({EVENTS}, {EVENTS + REGISTRY_EVENTS - 1}) AS i
    """,
    """
    INSERT INTO system_pairs (log_id, source_system, destination_system, first_seq, first_occurred_at)
    SELECT DISTINCT ON (source_system, destination_system) 1, source_system, destination_system, seq, occurred_at
    FROM event_facts ORDER BY source_system, destination_system, seq
    """,
    "ANALYZE",
)


big_log = log_filled_by(FILL)


def reg_hmac(i: int) -> bytes:
    return hashlib.sha256(f"reg-{i}".encode()).digest()


def test_the_fill_is_what_the_test_assumes(big_log: str) -> None:
    async def go(conn: asyncpg.Connection) -> tuple[int, list[str], int, dict[int, tuple[int, str]]]:
        pairs = await q.pairs(conn, LOG, EVENTS + REGISTRY_EVENTS)
        emitters = await q.emitters(conn, LOG, 100)
        last = await q.systems_last(conn, LOG, ["sys-3"], EVENTS, K)
        newest = await registry.newest_entries(conn, LOG, [reg_hmac(2), reg_hmac(9)], REGISTRY_KIND)
        return len(pairs), emitters, last["sys-3"].n, newest

    pairs, emitters, n, newest = on(big_log, go)
    assert pairs == 140 + 1 and sorted(emitters) == sorted([*EMITTERS, "admin-1"]) and n == K
    assert list(newest) == [0] and newest[0][0] == EVENTS + 7  # reg-2's newest of its two events


def test_pairs(big_log: str) -> None:
    bounded(big_log, q.PAIRS_SQL, (LOG, EVENTS + REGISTRY_EVENTS))


def test_emitters_by_skip_scan(big_log: str) -> None:
    bounded(big_log, q.EMITTERS_SQL, (LOG, 10_000), bound=4, constant=50)


def test_last_k_events_of_each_system(big_log: str) -> None:
    systems = [*SOURCES, *DESTINATIONS, "never-seen"]
    bounded(big_log, q.SYSTEMS_LAST_SQL, (LOG, systems, EVENTS, K), rows=len(systems) * 2 * K, bound=2, constant=200)


def test_last_k_events_of_each_emitter(big_log: str) -> None:
    names = [*EMITTERS, "never-seen"]
    bounded(big_log, q.EMITTERS_LAST_SQL, (LOG, names, EVENTS, K), rows=len(names) * K, bound=2, constant=200)


def test_registry_entries_read_each_systems_history(big_log: str) -> None:
    params = (LOG, [reg_hmac(i) for i in range(6)], *registry_kind())
    bounded(big_log, registry.ENTRIES_SQL, params, rows=REGISTRY_EVENTS, bound=4, constant=50)


def test_registry_listing_reads_the_registry_history(big_log: str) -> None:
    kind = REGISTRY_KIND
    params = (LOG, kind.source, kind.destination, kind.event_type)
    bounded(big_log, registry.HISTORY_SQL, params, bound=4, constant=50)


def registry_kind() -> tuple[str, str, str]:
    return REGISTRY_KIND.source, REGISTRY_KIND.destination, REGISTRY_KIND.event_type
