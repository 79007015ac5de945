"""Every statement behind the patient-access report reads rows bounded by
what it returns, whatever plan PostgreSQL caches (issue 14, point 2).

A log of 100,000 events is written straight into the tables (2,000
patients; one patient with a second, linked identifier), ANALYZEd, and each
report statement is prepared and run more than ten times on one connection,
so that the generic plan is in use, then checked node by node with
``assert_plan_bounded``. Before the read model, the page query's generic
plan walked the whole ``events_occurred_at`` index: this test is what would
have seen it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from auditsvc.domain.periods import MAX_TIME, MIN_TIME
from auditsvc.store import readmodel
from auditsvc.store import reports as q

from .plan_bounds import PlanNotBounded, bounded, log_filled_by, on

EVENTS = 100_000
PATIENTS = 2_000
LOG = 1
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def hmac_of(patient: int) -> bytes:
    return hashlib.sha256(b"patient-%d" % patient).digest()


LINKED = hashlib.sha256(b"patient-7-empi").digest()  # patient 7's second identifier

FILL = (
    "INSERT INTO logs (log_id, name, format_version) VALUES (1, 'plans.test/log', 2)",
    # Ten partitions of events (migration 0010): a page's records are read across them.
    "SELECT auditsvc_extend_partitions(100000, 10000)",
    # One event a minute; event i is about patient i % 2000 (50 events each).
    """
    INSERT INTO events (log_id, seq, event_id, occurred_at, record, leaf_hash, chain_hash)
    SELECT 1, i, gen_random_uuid(), timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
           '{"seq":' || i || '}', sha256(int8send(i)), sha256(int8send(-i))
    FROM generate_series(0, 99999) AS i
    """,
    """
    INSERT INTO event_facts
    SELECT 1, 0, i % 97 = 0, i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
           'hl7v2-message', (ARRAY['R','C','U'])[1 + i % 3], NULL,
           'sys-' || (i % 20), 'sys-' || (i % 7), 'actor-' || (i % 500), 'user', NULL, NULL, 'emitter-1',
           ARRAY['PID', 'OBX-' || (i % 5)]
    FROM generate_series(0, 99999) AS i
    """,
    """
    INSERT INTO patient_events (log_id, id_hmac, occurred_at, seq)
    SELECT 1, sha256(convert_to('patient-' || (i % 2000), 'UTF8')),
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute', i
    FROM generate_series(0, 99999) AS i
    """,
    # Patient 7's events every fourth time also name its second identifier.
    """
    INSERT INTO patient_events (log_id, id_hmac, occurred_at, seq)
    SELECT 1, sha256(convert_to('patient-7-empi', 'UTF8')),
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute', i
    FROM generate_series(7, 99999, 8000) AS i
    """,
    """
    INSERT INTO identifier_links (log_id, a, b) VALUES
        (1, sha256(convert_to('patient-7', 'UTF8')), sha256(convert_to('patient-7-empi', 'UTF8'))),
        (1, sha256(convert_to('patient-7-empi', 'UTF8')), sha256(convert_to('patient-7', 'UTF8')))
    """,
    """
    INSERT INTO identifier_links (log_id, a, b)
    SELECT 1, sha256(convert_to('patient-' || p, 'UTF8')), sha256(convert_to('other-' || p, 'UTF8'))
    FROM generate_series(8, 1999) AS p
    """,
    """
    INSERT INTO patient_identifiers (log_id, id_hmac, system, value_enc)
    SELECT 1, sha256(convert_to('patient-' || p, 'UTF8')), 'urn:test', 'sealed-' || p
    FROM generate_series(0, 1999) AS p
    """,
    "ANALYZE",
)


big_log = log_filled_by(FILL)


PATIENT = [hmac_of(7), LINKED]
PATIENT_EVENTS = EVENTS // PATIENTS  # 50, the linked identifier's all among them
ALL_TIME = (MIN_TIME, MAX_TIME)
A_WEEK = (BASE + timedelta(days=20), BASE + timedelta(days=27))


def test_the_fill_is_what_the_test_assumes(big_log: str) -> None:
    async def go(conn: asyncpg.Connection) -> tuple[int, int]:
        systems = await q.system_accesses(conn, LOG, PATIENT, *ALL_TIME, EVENTS)
        page = await q.access_events(conn, LOG, PATIENT, *ALL_TIME, EVENTS, (MIN_TIME, -1), 1000)
        return sum(s.as_source for s in systems), len(page)

    assert on(big_log, go) == (PATIENT_EVENTS, PATIENT_EVENTS)


def test_linked_identifiers_walk(big_log: str) -> None:
    bounded(big_log, q.COMPONENT_SQL, (LOG, hmac_of(7), q.MAX_LINKED_IDENTIFIERS))


def test_identifiers_and_tree_size_and_backfill_state(big_log: str) -> None:
    bounded(big_log, q.IDENTIFIERS_SQL, (LOG, PATIENT))
    bounded(big_log, q.TREE_SIZE_SQL, (LOG,))
    bounded(big_log, readmodel.BACKFILL_STATE_SQL, (LOG,))


@pytest.mark.parametrize("window", [ALL_TIME, A_WEEK], ids=["all-time", "one-week"])
def test_systems_summary_reads_only_the_patients_events(big_log: str, window: tuple[datetime, datetime]) -> None:
    # An aggregate: a few rows out, each of the patient's events read once.
    bounded(big_log, q.SYSTEMS_SQL, (LOG, PATIENT, *window, EVENTS), rows=PATIENT_EVENTS, bound=10, constant=200)


@pytest.mark.parametrize("window", [ALL_TIME, A_WEEK], ids=["all-time", "one-week"])
@pytest.mark.parametrize("limit", [11, 101])
def test_event_pages_read_about_the_page(big_log: str, window: tuple[datetime, datetime], limit: int) -> None:
    first = (LOG, PATIENT, *window, EVENTS, MIN_TIME - timedelta(days=1), -1, limit)
    bounded(big_log, q.EVENTS_SQL, first, bound=4, constant=50)
    later = (LOG, PATIENT, *window, EVENTS, BASE + timedelta(days=30), 0, limit)
    bounded(big_log, q.EVENTS_SQL, later, bound=4, constant=50)


def test_the_table_is_large_enough_to_tell(big_log: str) -> None:
    # A statement that reads the whole table fails the same budgets.
    whole = "SELECT seq FROM event_facts WHERE log_id = $1 AND actor_type = $2 ORDER BY occurred_at, seq LIMIT $3"
    with pytest.raises(PlanNotBounded):
        bounded(big_log, whole, (LOG, "system", 10), bound=4, constant=200)


# The console's filters (system, action, purpose, break-glass only, outcome)
# and its timeline: every statement still reads the patient's events at most.
FILTERS = {
    "none": (None, None, None, False, None),
    "system-and-action": ("sys-3", "R", None, False, 0),
    "break-glass-only": (None, None, None, True, None),
    "matches-nothing": ("no-such-system", None, None, False, None),
}


@pytest.mark.parametrize("filters", FILTERS.values(), ids=FILTERS.keys())
def test_filtered_summary_and_timeline_read_only_the_patients_events(big_log: str, filters: tuple) -> None:
    params = (LOG, PATIENT, *ALL_TIME, EVENTS, *filters)
    bounded(big_log, q.FILTERED_SYSTEMS_SQL, params, rows=PATIENT_EVENTS, bound=10, constant=200)
    bounded(big_log, q.DAILY_SQL, params, rows=PATIENT_EVENTS, bound=10, constant=200)


@pytest.mark.parametrize("filters", FILTERS.values(), ids=FILTERS.keys())
def test_filtered_event_pages_read_at_most_the_patients_events(big_log: str, filters: tuple) -> None:
    # A filter that few events pass reads on through the patient's events for a page.
    first = (LOG, PATIENT, *ALL_TIME, EVENTS, MIN_TIME - timedelta(days=1), -1, 11, *filters)
    bounded(big_log, q.FILTERED_EVENTS_SQL, first, rows=PATIENT_EVENTS, bound=4, constant=50)


def test_filters_filter(big_log: str) -> None:
    async def go(conn: asyncpg.Connection) -> tuple[int, int, int]:
        start, end = ALL_TIME
        after = (MIN_TIME, -1)
        only_r = await q.filtered_access_events(
            conn, LOG, PATIENT, start, end, EVENTS, after, 1000, (None, "R", None, False, None)
        )
        glass = await q.filtered_access_events(
            conn, LOG, PATIENT, start, end, EVENTS, after, 1000, (None, None, None, True, None)
        )
        days = await q.daily_accesses(conn, LOG, PATIENT, start, end, EVENTS, (None, None, None, False, None))
        return len(only_r), len(glass), sum(n for system, _, n in days if system.startswith("sys-"))

    only_r, glass, day_total = on(big_log, go)
    patient_seqs = [i for i in range(EVENTS) if i % PATIENTS == 7]
    assert only_r == sum(1 for i in patient_seqs if i % 3 == 0)  # action (R, C, U)[i % 3]
    assert glass == sum(1 for i in patient_seqs if i % 97 == 0)
    # Each event counts once per system it touched (source sys-(i%20), destination sys-(i%7)).
    assert day_total == sum(1 if i % 20 == i % 7 else 2 for i in patient_seqs)


def test_identifier_systems_skip_scan(big_log: str) -> None:
    from auditsvc.store import console_sessions

    bounded(big_log, console_sessions.IDENTIFIER_SYSTEMS_SQL, (LOG, 200), bound=4, constant=20)
