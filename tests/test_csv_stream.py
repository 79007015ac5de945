"""``?format=csv`` streams: a header row, one row per event, every page of
the report, in memory bounded by one page whatever the size (issue 15,
point 7). The large test writes 200,000 events straight into the tables and
measures the service's peak Python memory (tracemalloc: the service runs in
this process) while the whole report streams."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from typing import Any

import pytest

from auditsvc.api.csv_stream import EVENT_COLUMNS
from auditsvc.domain.tokens import Role

from .conftest import Service, as_superuser, event, query

MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def small(service: Service) -> Service:
    events = [
        event([(MRN, f"MRN-CSV-{i % 3}")], occurred_at=f"2026-11-0{1 + i % 9}T08:00:00Z", source="epic-adt")
        for i in range(9)
    ]
    with service.client(service.token(Role.EMITTER, ["epic-adt"])) as emitter:
        emitter.post("/v1/events", json={"events": events}).raise_for_status()
    return service


@pytest.mark.parametrize(
    ("path", "body", "rows"),
    [
        ("/v1/reports/patient-access", {"identifier": {"system": MRN, "value": "MRN-CSV-1"}}, 3),
        ("/v1/reports/system-access", {"system_id": "epic-adt"}, 9),
        ("/v1/reports/actor-access", {"actor_id": "mirth-engine/ADT-OUT"}, 9),
        ("/v1/reports/system-access", {"system_id": "lab-lis", "from": "2026-11-03", "to": "2026-11-04"}, 2),
    ],
)
def test_every_report_streams_its_events_as_csv(small: Service, path: str, body: dict[str, Any], rows: int) -> None:
    with small.client(small.token(Role.PRIVACY_OFFICER)) as officer:
        response = officer.post(f"{path}?format=csv", json={**body, "limit": 1})  # limit: a JSON page's, not the CSV's
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text.splitlines()[0] == ",".join(EVENT_COLUMNS)
    table = _csv(response.text)
    assert len(table) == rows
    assert [r["occurred_at"] for r in table] == sorted(r["occurred_at"] for r in table)
    assert all(r["patient_identifiers"].startswith(MRN + "|MRN-CSV-") for r in table)


def test_a_csv_export_is_recorded_before_it_streams(small: Service) -> None:
    with small.client(small.token(Role.PRIVACY_OFFICER)) as officer:
        officer.post("/v1/reports/system-access?format=csv", json={"system_id": "epic-adt"}).raise_for_status()
    [row] = query(
        str(small.settings.database_url),
        "SELECT e.record::jsonb -> 'attributes' AS a FROM events e JOIN event_facts f USING (log_id, seq) "
        "WHERE f.source_system = 'auditsvc'",
    )
    attributes = json.loads(row["a"]) if isinstance(row["a"], str) else row["a"]
    assert (attributes["query"], attributes["format"], attributes["subject"]) == (
        "system-access-report",
        "csv",
        "epic-adt",
    )
    assert attributes["first_seq"] == "-1"  # the whole period: every patient it could reveal


def test_bad_input_is_refused_before_any_csv(small: Service) -> None:
    with small.client(small.token(Role.PRIVACY_OFFICER)) as officer:
        response = officer.post("/v1/reports/system-access?format=csv", json={"system_id": "nowhere-at-all"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["system_id"]


BULK = 200_000


def _fill_bulk(url: str) -> None:
    # Records in format 1 shape (identifiers in clear) so the report can
    # reveal them without the sealing key; hashes are placeholders (this
    # test is about streaming, not the chain).
    record = (
        "json_build_object('seq', i, 'occurred_at', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " 'event_id', u, 'action', 'R', 'event_type', 'hl7v2-message', 'outcome', 0,"
        " 'source', json_build_object('system_id', 'bulk-src'),"
        " 'destination', json_build_object('system_id', 'bulk-dst'),"
        " 'actor', json_build_object('id', 'bulk-actor', 'type', 'system'),"
        " 'data_elements', json_build_array('PID', 'PV1', 'OBX', 'NTE'),"
        " 'patient', json_build_object('identifiers', json_build_array("
        "   json_build_object('system', 'urn:test:bulk', 'value', 'P-' || (i % 5000)))))::text"
    )
    as_superuser(
        url,
        "INSERT INTO logs (log_id, name, format_version) VALUES (1, 'test.auditsvc.local/log', 2) "
        "ON CONFLICT DO NOTHING",
        f"SELECT auditsvc_extend_partitions({BULK}, NULL)",  # events is partitioned by seq (migration 0010)
        f"""
        INSERT INTO events (log_id, seq, event_id, occurred_at, record, leaf_hash, chain_hash)
        SELECT 1, i, u, t, {record}, sha256(int8send(i)), sha256(int8send(-i))
        FROM (SELECT i, gen_random_uuid() AS u, timestamptz '2026-01-01 00:00:00+00' + i * interval '10 seconds' AS t
              FROM generate_series(0, {BULK - 1}) AS i) s
        """,
        f"""
        INSERT INTO event_facts
        SELECT 1, 0, false, i, timestamptz '2026-01-01 00:00:00+00' + i * interval '10 seconds', 'hl7v2-message', 'R',
               NULL, 'bulk-src', 'bulk-dst', 'bulk-actor', 'system', NULL, NULL, 'bulk', ARRAY['PID','PV1','OBX','NTE']
        FROM generate_series(0, {BULK - 1}) AS i
        """,
        "ANALYZE",
    )


def test_a_large_export_streams_in_bounded_memory(settings: Any) -> None:
    from .conftest import running_service

    url = str(settings.database_url)
    with running_service(settings) as service:
        token = service.token(Role.PRIVACY_OFFICER)
        _fill_bulk(url)
        with service.client(token) as officer:
            tracemalloc.start()
            try:
                rows = size = 0
                with officer.stream(
                    "POST", "/v1/reports/system-access?format=csv", json={"system_id": "bulk-src"}
                ) as r:
                    assert r.status_code == 200
                    for chunk in r.iter_bytes():
                        size += len(chunk)
                        rows += chunk.count(b"\n")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert rows == BULK + 1  # the header and every event
    print(f"\n{BULK:,} rows, {size / 1e6:.1f} MB of CSV streamed; peak traced memory {peak / 1e6:.1f} MB")
    # One page of 1,000 decoded records and a 64 kB buffer, not the report.
    assert peak < 32e6
    assert size > 3 * peak
