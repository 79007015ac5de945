"""The alert statements read rows bounded by what they return (a page of
alerts, the candidates asked about), never by the table, whatever plan
PostgreSQL caches: 60,000 alerts (a third acknowledged, a tenth awaiting
delivery), ANALYZEd."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from auditsvc.store import alerts as q

from .plan_bounds import bounded, log_filled_by

ALERTS = 60_000
LOG = 1

FILL = (
    "INSERT INTO logs (log_id, name, format_version) VALUES (1, 'plans.test/log', 2)",
    f"""
    INSERT INTO alerts (log_id, alert_id, kind, alert_key, systems, details, raised_at, raised_seq,
                        acknowledged_at, delivery, next_attempt_at)
    SELECT 1, gen_random_uuid(), (ARRAY['new_flow', 'uncovered_flow', 'baa_expiring', 'system_silent'])[1 + i % 4],
           'key-' || i, ARRAY['sys-' || (i % 50), 'dst-' || (i % 7)], '{{}}',
           timestamptz '2026-01-01 00:00:00+00' + i * interval '5 minutes', i * 10,
           CASE WHEN i % 3 = 0 THEN timestamptz '2026-11-01 00:00:00+00' END,
           CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'delivered' END,
           timestamptz '2026-01-01 00:00:00+00' + i * interval '5 minutes'
    FROM generate_series(0, {ALERTS - 1}) AS i
    """,
    "ANALYZE",
)

big_log = log_filled_by(FILL)


@pytest.mark.parametrize("status", ["open", "acknowledged", "all"])
def test_a_page_of_alerts_reads_that_page(big_log: str, status: str) -> None:
    report = bounded(big_log, q.LIST_SQL[status], (LOG, 100), bound=3, constant=50)
    assert report.result("force_generic_plan").rows_returned == 100


def test_the_alerts_since_a_report_read_those_alerts(big_log: str) -> None:
    report = bounded(big_log, q.SINCE_SQL, (LOG, 10 * (ALERTS - 300), 500), bound=3, constant=50)
    assert report.result("auto").rows_returned == 299


def test_the_alerts_due_for_delivery_read_those_due(big_log: str) -> None:
    due = datetime(2026, 1, 2, tzinfo=UTC)  # the first day's pending ones
    bounded(big_log, q.DUE_SQL, (LOG, due, 20), bound=3, constant=50)


def test_the_candidates_read_one_probe_each(big_log: str) -> None:
    kinds = ["new_flow", "uncovered_flow"] * 50
    keys = [f"key-{i}" for i in range(100)]
    bounded(big_log, q.UNRAISED_SQL, (LOG, kinds, keys), rows=100, bound=3, constant=50)


def test_an_acknowledgement_reads_its_alert(big_log: str) -> None:
    bounded(big_log, q.FOR_ACK_SQL, (LOG, uuid.uuid4()), rows=1, bound=1, constant=10)
