"""The break-glass queue reads its own rows, never the log's, whatever plan
PostgreSQL caches (migration 0009's partial indexes).

A log of 100,000 events is written straight into the tables: one event in 97
is break-glass (1,031), the first half of those reviewed by the service, a
few of the rest "reviewed" by a forged event an emitter sent. Each statement
is prepared and run more than ten times on one connection (the generic plan
in use) and checked node by node with ``assert_plan_bounded``.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from auditsvc.domain.periods import MAX_TIME, MIN_TIME
from auditsvc.store import reviews as q

from .plan_bounds import PlanBoundsReport, PlanNotBounded, bounded, log_filled_by, on

EVENTS = 100_000
LOG = 1
BASE = datetime(2026, 1, 1, tzinfo=UTC)
BREAK_GLASS = len(range(0, EVENTS, 97))  # 1,031
REVIEWED_BELOW = 50_000  # break-glass events below this seq have a review
REVIEWED = len(range(0, REVIEWED_BELOW, 97))  # 516


def event_id(i: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(b"e%d" % i, usedforsecurity=False).hexdigest())  # md5(...)::uuid in SQL


FILL = (
    "INSERT INTO logs (log_id, name, format_version) VALUES (1, 'plans.test/log', 2)",
    # Eleven partitions of events (migration 0010): rows are read from them by seq.
    "SELECT auditsvc_extend_partitions(110000, 10000)",
    """
    INSERT INTO events (log_id, seq, event_id, occurred_at, record, leaf_hash, chain_hash)
    SELECT 1, i, md5('e' || i)::uuid, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
           '{"seq":' || i || '}', sha256(int8send(i)), sha256(int8send(-i))
    FROM generate_series(0, 99999) AS i
    """,
    """
    INSERT INTO event_facts
    SELECT 1, 0, i % 97 = 0, i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
           CASE WHEN i % 97 = 0 THEN 'break-glass' ELSE 'hl7v2-message' END, 'R', NULL,
           'sys-' || (i % 20), 'sys-' || (i % 7), 'actor-' || (i % 500), 'user', NULL, NULL, 'emitter-1',
           ARRAY['PID', 'OBX-' || (i % 5)]
    FROM generate_series(0, 99999) AS i
    """,
    # The service's reviews: seq 100000 + k reviews break-glass event 97k (below REVIEWED_BELOW).
    """
    INSERT INTO events (log_id, seq, event_id, occurred_at, record, leaf_hash, chain_hash)
    SELECT 1, 100000 + k, md5('r' || k)::uuid, timestamptz '2026-06-01 00:00:00+00' + k * interval '1 minute',
           '{"review":' || k || '}', sha256(int8send(100000 + k)), sha256(int8send(-100000 - k))
    FROM generate_series(0, 515) AS k
    """,
    """
    INSERT INTO event_facts
    SELECT 1, 0, false, 100000 + k, timestamptz '2026-06-01 00:00:00+00' + k * interval '1 minute',
           'break-glass-review', 'E', NULL, 'auditsvc', 'auditsvc:break-glass-review', 'tok-1', 'user',
           'privacy_officer', NULL, 'tok-1', ARRAY['AuditEvent/' || md5('e' || (97 * k))::uuid::text]
    FROM generate_series(0, 515) AS k
    """,
    # Forged "reviews" of the next ten break-glass events, from an emitter's own system.
    """
    INSERT INTO event_facts
    SELECT 1, 0, false, 100516 + k, timestamptz '2026-06-02 00:00:00+00' + k * interval '1 minute',
           'break-glass-review', 'E', NULL, 'epic-adt', 'auditsvc:break-glass-review', 'x', 'user',
           NULL, NULL, 'emitter-1', ARRAY['AuditEvent/' || md5('e' || (97 * (516 + k)))::uuid::text]
    FROM generate_series(0, 9) AS k
    """,
    "ANALYZE",
)


big_log = log_filled_by(FILL)


def indexes_used(report: PlanBoundsReport) -> set[str]:
    return {n.label for r in report.results for n in r.nodes if " using " in n.label}


SIZE = EVENTS + 526
START = (MIN_TIME - timedelta(days=1), -1)


def queue(
    status: str, limit: int, after: tuple[datetime, int] = START, until: tuple[datetime, int] = (MAX_TIME, 2**62)
) -> tuple[Any, ...]:
    return (LOG, MIN_TIME, MAX_TIME, SIZE, after[0], after[1], limit, status, *until)


def test_the_fill_is_what_the_test_assumes(big_log: str) -> None:
    async def go(conn: asyncpg.Connection) -> tuple[int, int, int, list[int]]:
        everything = await q.queue_page(conn, LOG, "all", MIN_TIME, MAX_TIME, SIZE, START, 5000)
        reviewed = await q.queue_page(conn, LOG, "reviewed", MIN_TIME, MAX_TIME, SIZE, START, 5000)
        unreviewed = await q.queue_page(conn, LOG, "unreviewed", MIN_TIME, MAX_TIME, SIZE, START, 5000)
        found = await q.reviews_of(conn, LOG, [event_id(0), event_id(97 * 516), event_id(1)], SIZE, 20)
        return len(everything), len(reviewed), len(unreviewed), [len(v) for v in found.values()]

    # The forged reviews count for nothing: those ten events are still unreviewed.
    assert on(big_log, go) == (BREAK_GLASS, REVIEWED, BREAK_GLASS - REVIEWED, [1, 0, 0])


@pytest.mark.parametrize("limit", [11, 101])
def test_a_page_of_the_whole_queue_reads_about_the_page(big_log: str, limit: int) -> None:
    report = bounded(big_log, q.QUEUE_SQL, queue("all", limit), bound=4, constant=50)
    assert any("event_facts_break_glass" in label for label in indexes_used(report))
    later = (BASE + timedelta(days=40), 0)
    bounded(big_log, q.QUEUE_SQL, queue("all", limit, later), bound=4, constant=50)


@pytest.mark.parametrize("status", ["reviewed", "unreviewed"])
def test_a_filtered_page_reads_queue_rows_only(big_log: str, status: str) -> None:
    # Listing the unreviewed walks past the reviewed ones (and the reverse, at
    # the end): at most the queue's rows, a hundredth of the log's.
    report = bounded(big_log, q.QUEUE_SQL, queue(status, 11), rows=BREAK_GLASS, bound=2, constant=50)
    assert any("event_facts_reviews" in label for label in indexes_used(report))
    # Where the page's rows are together, about the page.
    at = (BASE + timedelta(minutes=60_000), 0) if status == "unreviewed" else START
    bounded(big_log, q.QUEUE_SQL, queue(status, 11, at), bound=4, constant=50)


BUDGET = 200


def test_a_filtered_request_walks_at_most_its_budget(big_log: str) -> None:
    # The walk: the budget's rows of the partial index, nothing else.
    walk = bounded(big_log, q.WALK_SQL, (LOG, MIN_TIME, MAX_TIME, SIZE, *START, BUDGET), rows=BUDGET, bound=2)
    assert any("event_facts_break_glass" in label for label in indexes_used(walk))
    until = on(big_log, lambda c: q.walk_end(c, LOG, MIN_TIME, MAX_TIME, SIZE, START, BUDGET))
    assert until is not None
    # The unreviewed from the start: none among the first 200 (all reviewed), read no further.
    bounded(big_log, q.QUEUE_SQL, queue("unreviewed", 11, START, until), rows=BUDGET, bound=2, constant=50)


def test_following_the_walk_finds_every_unreviewed_access_and_only_those(big_log: str) -> None:
    async def go(conn: asyncpg.Connection) -> tuple[list[int], int, int]:
        after, found, requests, empty = START, [], 0, 0
        while True:
            requests += 1
            until = await q.walk_end(conn, LOG, MIN_TIME, MAX_TIME, SIZE, after, BUDGET)
            rows = await q.queue_page(conn, LOG, "unreviewed", MIN_TIME, MAX_TIME, SIZE, after, 51, until)
            page = rows[:50]
            found += [r.seq for r in page]
            empty += not page
            if len(rows) > 50:
                after = (page[-1].occurred_at, page[-1].seq)
            elif until is not None:
                after = until
            else:
                return found, requests, empty

    found, requests, empty = on(big_log, go)
    assert found == list(range(97 * REVIEWED, EVENTS, 97))
    assert empty >= REVIEWED // BUDGET  # the reviewed stretch is walked past in budget-sized steps
    assert requests < 30


def test_the_reviews_of_a_page_read_those_reviews(big_log: str) -> None:
    keys = [q.review_key(event_id(97 * k)) for k in range(0, 1000, 10)]  # half reviewed, half not
    report = bounded(big_log, q.REVIEWS_SQL, (LOG, keys, SIZE, 20), bound=4, constant=200)
    assert any("event_facts_reviews" in label for label in indexes_used(report))
    bounded(big_log, q.FACTS_SQL, (LOG, 97), bound=4, constant=10)


def test_the_table_is_large_enough_to_tell(big_log: str) -> None:
    # The queue without its index (a filter on the break-glass flag's event type) fails the same budget.
    whole = (
        "SELECT seq FROM event_facts WHERE log_id = $1 AND event_type = 'break-glass' "
        "AND action = $2 ORDER BY seq DESC LIMIT $3"
    )
    with pytest.raises(PlanNotBounded):
        bounded(big_log, whole, (LOG, "U", 11), bound=4, constant=50)
