"""The FHIR search's statements (store/fhir_search.py) read rows bounded by
the rows they return, whatever plan PostgreSQL caches: on the 100,000-event
log of tests/test_report_plans.py, the generic plan in use. A page scans at
most its budget, so a search by date alone reads its budget, never the log."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
import pytest

from auditsvc.domain.periods import MAX_TIME, MIN_TIME
from auditsvc.store import fhir_search as q

from .plan_bounds import bounded, log_filled_by, on
from .test_report_plans import BASE, FILL, LINKED, LOG, hmac_of

ALL_TIME = (MIN_TIME, MAX_TIME)
A_WEEK = (BASE + timedelta(days=20), BASE + timedelta(days=27))
FIRST = (MIN_TIME - timedelta(days=1), -1)
LATER = (BASE + timedelta(days=30), 0)
WINDOWS = pytest.mark.parametrize("window", [ALL_TIME, A_WEEK], ids=["all-time", "one-week"])

EVENTS = 40_000
# The patient-access report's fill (tests/test_report_plans.py: one event a
# minute, 2,000 patients, patient 7 with a linked identifier) cut to the
# tables a search reads and to 40,000 events, and event_ids (_id, reads).
big_log = log_filled_by(
    (
        *(s.replace("99999", str(EVENTS - 1)).replace("100000", str(EVENTS)) for s in FILL[:5]),
        "INSERT INTO patient_events (log_id, id_hmac, occurred_at, seq) "
        "SELECT 1, sha256(convert_to('patient-7-empi', 'UTF8')), occurred_at, seq FROM events WHERE seq % 8000 = 7",
        "INSERT INTO event_ids (log_id, event_id, seq) SELECT log_id, event_id, seq FROM events",
        "ANALYZE",
    )
)


def scan(window: tuple[datetime, datetime], after: tuple[datetime, int], budget: int) -> tuple[object, ...]:
    return (*window, EVENTS, *after, budget)


@WINDOWS
@pytest.mark.parametrize("budget", [11, 1001])
def test_a_patient_scan_reads_about_its_rows(big_log: str, window, budget: int) -> None:
    """Patient 7 has 20 events, 5 of them under its linked identifier too."""
    for after in (FIRST, LATER):
        bounded(
            big_log, q.PATIENT_SCAN_SQL, (LOG, [hmac_of(7), LINKED], *scan(window, after, budget)), bound=6, constant=60
        )


@WINDOWS
@pytest.mark.parametrize(
    ("columns", "subjects"),
    [
        (("source_system",), ["sys-3"]),
        (("actor_id",), ["actor-42", "actor-43"]),
        (("source_system", "destination_system"), ["sys-3", "sys-4"]),
        (("actor_id", "source_system", "destination_system"), ["sys-5"]),
    ],
)
def test_a_systems_or_actors_scan_reads_about_its_rows(big_log: str, window, columns, subjects) -> None:
    for after in (FIRST, LATER):
        params = (LOG, subjects, *scan(window, after, 1001))
        bounded(big_log, q.facts_scan_sql(*columns), params, bound=8, constant=100)


@WINDOWS
def test_a_scan_by_date_alone_reads_its_budget_not_the_log(big_log: str, window) -> None:
    for after in (FIRST, LATER):
        bounded(big_log, q.DATE_SCAN_SQL, (LOG, *scan(window, after, 1001)), bound=4, constant=50)


def test_ids_and_records_read_their_rows(big_log: str) -> None:
    async def some_ids(conn: asyncpg.Connection) -> list[uuid.UUID]:
        return [r["event_id"] for r in await conn.fetch("SELECT event_id FROM event_ids WHERE seq % 3989 = 5")]

    ids = on(big_log, some_ids)
    assert len(ids) == 11
    bounded(big_log, q.IDS_SCAN_SQL, (LOG, ids, *scan(ALL_TIME, FIRST, 1001)), bound=6, constant=50)
    bounded(big_log, q.RECORDS_SQL, (LOG, list(range(500, EVENTS, 200))), bound=6, constant=50)
