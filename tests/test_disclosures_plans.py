"""The accounting's statements read rows bounded by the patient's events
(or by the rows they return), never by the log, whatever plan PostgreSQL
caches: the 100,000-event log of tests/test_report_plans.py, one event in
ten a disclosure, each statement checked with ``assert_plan_bounded``."""

from __future__ import annotations

import asyncpg

from auditsvc.domain.periods import MAX_TIME, MIN_TIME
from auditsvc.store import disclosures as q

from .plan_bounds import bounded, log_filled_by, on
from .test_report_plans import EVENTS, FILL, LOG, PATIENT, PATIENT_EVENTS

DISCLOSURES = ["disclosure", "export"]
FILL_WITH_DISCLOSURES = tuple(
    s.replace("'hl7v2-message'", "CASE WHEN i % 10 = 7 THEN 'disclosure' ELSE 'hl7v2-message' END") for s in FILL
)


big_log = log_filled_by(FILL_WITH_DISCLOSURES)


def test_the_fill_gives_the_patient_disclosures(big_log: str) -> None:
    async def go(conn: asyncpg.Connection) -> int:
        return len(await q.typed_events(conn, LOG, PATIENT, MIN_TIME, MAX_TIME, EVENTS, DISCLOSURES))

    # Patient 7's events are i = 7 (mod 2000): all of them are 7 (mod 10).
    assert on(big_log, go) == PATIENT_EVENTS


def test_a_patients_disclosures_read_only_the_patients_events(big_log: str) -> None:
    params = (LOG, PATIENT, MIN_TIME, MAX_TIME, EVENTS, DISCLOSURES, None)
    bounded(big_log, q.TYPED_EVENTS_SQL, params, rows=PATIENT_EVENTS, bound=10, constant=200)


def test_suspensions_read_only_the_subjects_events(big_log: str) -> None:
    # None here is from auditsvc: every one of the patient's events is read, and dropped.
    params = (LOG, PATIENT, MIN_TIME, MAX_TIME, EVENTS, ["disclosure-suspension"], "auditsvc")
    bounded(big_log, q.TYPED_EVENTS_SQL, params, rows=PATIENT_EVENTS, bound=10, constant=200)


def test_listed_records_are_read_by_key(big_log: str) -> None:
    seqs = list(range(7, EVENTS, 2000))
    bounded(big_log, q.RECORDS_BY_SEQ_SQL, (LOG, seqs), bound=4, constant=50)
