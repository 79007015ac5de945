"""The flow and BAA reports' statements read rows bounded by the rollup rows
of the period (pairs x days x kinds) or one pair's events in a gap, never by
the log, whatever plan PostgreSQL caches.

100,000 events over 400 days (20 sources x 5 destinations), their rollup
and element rows, ANALYZEd; each statement prepared and run more than ten
times on one connection (the generic plan in use), then checked node by node."""

from __future__ import annotations

from datetime import UTC, date, datetime

from auditsvc.store import flows as q

from .plan_bounds import bounded, log_filled_by, on

EVENTS = 100_000
LOG = 1
START = "timestamptz '2025-01-01 00:00:00+00'"
STEP = "interval '345 seconds'"  # 100,000 events over 400 days

FILL = (
    "INSERT INTO logs (log_id, name, format_version) VALUES (1, 'plans.test/log', 2)",
    f"""
    INSERT INTO event_facts (log_id, seq, occurred_at, outcome, break_glass, event_type, action, purpose_of_use,
                             source_system, destination_system, actor_id, actor_type, emitter, data_elements)
    SELECT 1, i, {START} + i * {STEP}, 0, false, 'hl7v2-message', 'R', CASE WHEN i % 3 = 0 THEN 'TREAT' END,
           'sys-' || (i % 20), 'dst-' || (i % 5), 'actor-' || (i % 50), 'system', 'emitter-1',
           ARRAY['PID', 'OBX-' || (i % 4)]
    FROM generate_series(0, {EVENTS - 1}) AS i
    """,
    f"""
    INSERT INTO patient_events (log_id, id_hmac, occurred_at, seq)
    SELECT 1, sha256(convert_to('patient-' || (i % 3000) || '-' || k, 'UTF8')), {START} + i * {STEP}, i
    FROM generate_series(0, {EVENTS - 1}) AS i, generate_series(1, 2) AS k
    """,
    """
    INSERT INTO flow_days
    SELECT log_id, (occurred_at AT TIME ZONE 'UTC')::date, source_system, destination_system, event_type,
           coalesce(purpose_of_use, ''), action, count(*), min(occurred_at), max(occurred_at)
    FROM event_facts GROUP BY 1, 2, 3, 4, 5, 6, 7
    """,
    """
    INSERT INTO flow_day_elements
    SELECT DISTINCT log_id, (occurred_at AT TIME ZONE 'UTC')::date, source_system, destination_system,
           unnest(data_elements)
    FROM event_facts
    """,
    "ANALYZE",
)

big_log = log_filled_by(FILL)
FIRST, LAST = date(2025, 6, 1), date(2025, 6, 30)


def _count(url: str, sql: str, *args: object) -> int:
    return int(on(url, lambda conn: conn.fetchval(sql, *args)))


def test_the_period_reads_its_rollup_rows_only(big_log: str) -> None:
    report = bounded(big_log, q.FLOW_DAYS_SQL, (LOG, FIRST, LAST), bound=2, constant=200)
    assert 1000 < report.result("force_generic_plan").rows_returned < 5000  # a month of a 100,000-row rollup


def test_the_elements_read_the_periods_element_rows_only(big_log: str) -> None:
    rows = _count(big_log, "SELECT count(*) FROM flow_day_elements WHERE day BETWEEN $1 AND $2", FIRST, LAST)
    assert rows < 10_000
    bounded(big_log, q.ELEMENTS_SQL, (LOG, FIRST, LAST), rows=rows, bound=2, constant=200)


def test_a_gaps_patients_read_that_pairs_events_in_the_gap_only(big_log: str) -> None:
    ranges = ([datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 20, tzinfo=UTC)],
              [datetime(2025, 6, 4, tzinfo=UTC), datetime(2025, 6, 22, tzinfo=UTC)])  # fmt: skip
    pair_events = _count(
        big_log,
        "SELECT count(*) FROM event_facts WHERE source_system = 'sys-3' AND destination_system = 'dst-3' "
        "AND ((occurred_at >= $1 AND occurred_at < $2) OR (occurred_at >= $3 AND occurred_at < $4))",
        ranges[0][0], ranges[1][0], ranges[0][1], ranges[1][1],
    )  # fmt: skip
    assert 0 < pair_events < 500
    bounded(big_log, q.PATIENTS_SQL, (LOG, "sys-3", "dst-3", *ranges, 100_000), rows=pair_events, bound=4, constant=200)


def test_a_gaps_patients_read_at_most_the_scan_limit(big_log: str) -> None:
    whole = ([datetime(2025, 1, 1, tzinfo=UTC)], [datetime(2026, 3, 1, tzinfo=UTC)])
    report = bounded(big_log, q.PATIENTS_SQL, (LOG, "sys-3", "dst-3", *whole, 300), rows=300, bound=4, constant=200)
    assert report.result("auto").rows_returned == 1
