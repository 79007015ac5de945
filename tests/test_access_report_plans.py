"""The by-system and by-actor report statements read rows bounded by the page
(or, for the summary, by its cap), whatever plan PostgreSQL caches: on the
100,000-event log of tests/test_report_plans.py, a system with ~19,000
events and an actor with 200, the generic plan in use."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import asyncpg
import pytest

from auditsvc.domain.periods import MAX_TIME, MIN_TIME
from auditsvc.store import access_reports as q
from auditsvc.store import activity, revealed

from .plan_bounds import bounded, log_filled_by, on
from .test_report_plans import BASE, EVENTS, FILL, LOG, hmac_of

ALL_TIME = (MIN_TIME, MAX_TIME)
A_WEEK = (BASE + timedelta(days=20), BASE + timedelta(days=27))
BEFORE_ALL = (MIN_TIME - timedelta(days=1), -1)


big_log = log_filled_by(FILL)


SYSTEM = "sys-3"  # source of i % 20 == 3, destination of i % 7 == 3: ~19,300 events
ACTOR = "actor-42"  # 200 events


def test_the_fill_gives_the_subjects_many_events(big_log: str) -> None:
    async def go(conn: asyncpg.Connection) -> tuple[int, int]:
        system = await q.access_summary(conn, q.SYSTEM_SUMMARY_SQL, LOG, SYSTEM, *ALL_TIME, EVENTS, EVENTS)
        actor = await q.access_summary(conn, q.ACTOR_SUMMARY_SQL, LOG, ACTOR, *ALL_TIME, EVENTS, EVENTS)
        return system.events, actor.events

    system, actor = on(big_log, go)
    assert system > 15_000
    assert actor == EVENTS // 500


@pytest.mark.parametrize("window", [ALL_TIME, A_WEEK], ids=["all-time", "one-week"])
@pytest.mark.parametrize("sql", [q.SYSTEM_PAGE_SQL, q.ACTOR_PAGE_SQL], ids=["system", "actor"])
def test_pages_read_about_the_page(big_log: str, window: tuple[datetime, datetime], sql: str) -> None:
    subject = SYSTEM if sql is q.SYSTEM_PAGE_SQL else ACTOR
    for after in (BEFORE_ALL, (BASE + timedelta(days=30), 0)):
        bounded(big_log, sql, (LOG, subject, *window, EVENTS, *after, 101), bound=4, constant=50)


@pytest.mark.parametrize("window", [ALL_TIME, A_WEEK], ids=["all-time", "one-week"])
@pytest.mark.parametrize("sql", [q.SYSTEM_SUMMARY_SQL, q.ACTOR_SUMMARY_SQL], ids=["system", "actor"])
def test_the_summary_reads_at_most_its_cap(big_log: str, window: tuple[datetime, datetime], sql: str) -> None:
    subject = SYSTEM if sql is q.SYSTEM_SUMMARY_SQL else ACTOR
    cap = 2_000
    bounded(big_log, sql, (LOG, subject, *window, EVENTS, cap), rows=cap, bound=6, constant=200)


def test_seen_and_links_read_a_few_rows(big_log: str) -> None:
    bounded(big_log, q.SYSTEM_SEEN_SQL, (LOG, SYSTEM), rows=2, bound=1, constant=20)
    bounded(big_log, q.SYSTEM_SEEN_SQL, (LOG, "never-seen"), rows=2, bound=1, constant=20)
    bounded(big_log, q.ACTOR_SEEN_SQL, (LOG, ACTOR), rows=1, bound=1, constant=20)
    bounded(big_log, q.LINKS_SQL, (LOG, [hmac_of(7), hmac_of(9)], 50), bound=2, constant=20)


@pytest.mark.parametrize("window", [ALL_TIME, A_WEEK], ids=["all-time", "one-week"])
def test_activity_pages_read_about_the_page(big_log: str, window: tuple[datetime, datetime]) -> None:
    # The service's own events are one source system among others (sys-3 stands in for auditsvc).
    for after in (BEFORE_ALL, (BASE + timedelta(days=30), 0)):
        bounded(big_log, activity.ACTIVITY_PAGE_SQL, (LOG, SYSTEM, *window, EVENTS, *after, 101), bound=4, constant=50)


@pytest.mark.parametrize("window", [ALL_TIME, A_WEEK], ids=["all-time", "one-week"])
def test_revealed_by_reads_the_patients_events_and_the_runs(big_log: str, window: tuple[datetime, datetime]) -> None:
    patient = [hmac_of(7), hashlib.sha256(b"patient-7-empi").digest()]
    bounded(big_log, revealed.TOUCHES_SQL, (LOG, patient, *window, EVENTS), rows=50, bound=6, constant=100)
    subjects = [hmac_of(3), hmac_of(4)]  # stand-ins for run subjects: 50 rows each, none a service event
    bounded(big_log, revealed.RUNS_SQL, (LOG, subjects, EVENTS, "auditsvc", 1000), rows=100, bound=6, constant=100)
