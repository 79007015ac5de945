"""The patient-access report: linked identifiers, per-system rows, ranges, paging."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from auditsvc.domain.tokens import Role

from .conftest import Service, event, query

MRN_A = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-R-0001")
EMPI = ("urn:oid:2.16.840.1.113883.3.9999.0", "E-R-0001")
FHIR_ID = ("https://fhir.example-hospital.org/Patient", "pat-r-0001")
MRN_B = ("urn:oid:2.16.840.1.113883.3.5678.2.1", "B-R-0001")
OTHER = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-R-0999")


@pytest.fixture
def reports(service: Service) -> tuple[httpx.Client, Service]:
    emitter = service.token(Role.EMITTER, ["epic-adt", "lab-lis", "epic-fhir", "rad-ris"])
    events = [
        # The lab knows facility A's MRN and the EMPI id.
        event([MRN_A, EMPI], source="epic-adt", destination="lab-lis", occurred_at="2026-11-01T08:00:00Z"),
        event(
            [MRN_A],
            source="lab-lis",
            destination="epic-adt",
            occurred_at="2026-11-02T09:00:00Z",
            action="C",
            data_elements=["OBR", "OBX"],
        ),
        # The FHIR API knows only the FHIR id and the EMPI id.
        event(
            [FHIR_ID, EMPI],
            source="epic-fhir",
            destination="fhir-patient-app",
            occurred_at="2026-11-03T10:00:00Z",
            event_type="fhir-rest",
            data_elements=["Observation"],
            actor={"id": "u-pt-1", "type": "user", "role": "patient"},
        ),
        # Radiology at facility B knows its own MRN, linked through the FHIR id.
        event([MRN_B, FHIR_ID], source="rad-ris", destination="rad-ris", occurred_at="2026-11-04T11:00:00Z"),
        # Someone else entirely.
        event([OTHER], source="epic-adt", destination="lab-lis", occurred_at="2026-11-03T12:00:00Z"),
    ]
    with service.client(emitter) as client:
        client.post("/v1/events", json={"events": events}).raise_for_status()
    officer = service.client(service.token(Role.PRIVACY_OFFICER))
    return officer, service


def report(client: httpx.Client, identifier: tuple[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/reports/patient-access", json={"identifier": {"system": identifier[0], "value": identifier[1]}, **body}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("by", [MRN_A, EMPI, FHIR_ID, MRN_B])
def test_any_identifier_finds_accesses_recorded_under_linked_ones(
    reports: tuple[httpx.Client, Service], by: tuple[str, str]
) -> None:
    client, _ = reports
    body = report(client, by)
    assert {(i["system"], i["value"]) for i in body["patient"]["identifiers"]} == {MRN_A, EMPI, FHIR_ID, MRN_B}
    assert len(body["events"]) == 4
    assert OTHER[1] not in str(body)


def test_each_system_counts_an_event_once_as_source_destination_or_both(reports: tuple[httpx.Client, Service]) -> None:
    client, _ = reports
    systems = {s["system_id"]: s for s in report(client, MRN_A)["systems"]}
    assert set(systems) == {"epic-adt", "lab-lis", "epic-fhir", "fhir-patient-app", "rad-ris"}
    adt = systems["epic-adt"]
    assert (adt["count"], adt["as_source"], adt["as_destination"]) == (2, 1, 1)
    assert adt["first_access"] == "2026-11-01T08:00:00.000000Z"
    assert adt["last_access"] == "2026-11-02T09:00:00.000000Z"
    assert adt["actions"] == ["C", "R"]
    assert adt["data_elements"] == ["OBR", "OBX", "PID", "PV1"]
    rad = systems["rad-ris"]
    assert (rad["count"], rad["as_source"], rad["as_destination"]) == (1, 1, 1)
    app = systems["fhir-patient-app"]
    assert app["actors"] == [{"id": "u-pt-1", "type": "user", "role": "patient"}]


def test_date_range_is_inclusive_by_day_or_timestamp(reports: tuple[httpx.Client, Service]) -> None:
    client, _ = reports
    by_day = report(client, EMPI, **{"from": "2026-11-02", "to": "2026-11-03"})
    assert [e["occurred_at"][:10] for e in by_day["events"]] == ["2026-11-02", "2026-11-03"]
    by_time = report(client, EMPI, **{"from": "2026-11-03T10:00:00Z", "to": "2026-11-04T06:00:00-05:00"})
    assert [e["occurred_at"] for e in by_time["events"]] == [
        "2026-11-03T10:00:00.000000Z",
        "2026-11-04T11:00:00.000000Z",
    ]
    assert {s["system_id"] for s in by_time["systems"]} == {"epic-fhir", "fhir-patient-app", "rad-ris"}


def test_events_page_by_cursor_in_time_order_without_repeats(reports: tuple[httpx.Client, Service]) -> None:
    client, _ = reports
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        body = report(client, MRN_B, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [e["occurred_at"] for e in body["events"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 4


def test_unknown_identifier_reports_nothing(reports: tuple[httpx.Client, Service]) -> None:
    client, _ = reports
    body = report(client, ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-NOBODY"))
    assert body["systems"] == [] and body["events"] == [] and body["next_cursor"] is None


def test_every_report_is_itself_recorded_in_the_chain(reports: tuple[httpx.Client, Service]) -> None:
    client, service = reports
    report(client, FHIR_ID)
    rows = query(
        str(service.settings.database_url),
        "SELECT record::jsonb AS r FROM events WHERE record::jsonb->>'event_type' = 'audit-log-query'",
    )
    assert len(rows) == 1
    import json

    recorded = json.loads(rows[0]["r"]) if isinstance(rows[0]["r"], str) else rows[0]["r"]
    # The patient is the read's subject, sealed like every identifier at rest.
    [identifier] = recorded["patient"]["identifiers"]
    assert identifier["system"] == FHIR_ID[0] and "value" not in identifier
    assert identifier["value_enc"].startswith("aes256gcm:") and FHIR_ID[1] not in identifier["value_enc"]
    assert recorded["v"] == 2
    assert recorded["actor"]["role"] == "privacy_officer"
    assert recorded["source"]["system_id"] == "auditsvc"
    # The next report shows the privacy office's own access.
    systems = {s["system_id"] for s in report(client, MRN_A)["systems"]}
    assert "auditsvc" in systems
