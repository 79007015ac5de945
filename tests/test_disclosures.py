"""The accounting of disclosures (§164.528): exclusions by reason, grouping,
the six-year edge, suspensions, recipients, and its own audit event."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from auditsvc.domain.disclosure_rules import DECLARED_EXCLUSIONS, EXCLUSION_REASONS
from auditsvc.domain.tokens import Role

from .conftest import Service, event, query

MRN = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-DISC-0001")
EMPI = ("urn:oid:2.16.840.1.113883.3.9999.0", "E-DISC-0001")
OTHER = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-DISC-0999")
SOURCES = ["epic-adt", "him-release"]
REQUESTED = "2026-11-24"


def disclosure(
    when: str, recipient: str, purpose: str | None = None, ids: list[tuple[str, str]] | None = None, **extra: Any
) -> dict[str, Any]:
    body = event(
        ids or [MRN],
        source="him-release",
        destination=recipient,
        occurred_at=when,
        event_type="disclosure",
        action="R",
        data_elements=extra.pop("data_elements", ["PID-5", "OBX"]),
        actor={"id": "him-clerk-7", "type": "user", "role": "HIM"},
        **extra,
    )
    if purpose:
        body["purpose_of_use"] = purpose
    return body


def excluded_events() -> list[dict[str, Any]]:
    when = "2026-03-01T10:00:00Z"
    events = [
        disclosure(when, "cardiology-clinic", "TREAT"),
        disclosure(when, "payer-acme", "HPAYMT"),
        disclosure(when, "quality-dept", "HOPERAT"),
        disclosure(when, "patient-portal", attributes={"recipient_is_patient": True}),
        disclosure(when, "life-insurer", "HMARKT", attributes={"authorization": "AUTH-2026-0042"}),
        disclosure(when, "front-desk", "HDIRECT"),
    ]
    events += [
        disclosure(when, f"x-{reason}", attributes={"accounting_exclusion": reason}) for reason in DECLARED_EXCLUSIONS
    ]
    return events


@pytest.fixture
def officer(service: Service) -> httpx.Client:
    emitter = service.token(Role.EMITTER, SOURCES)
    listed = [
        # Public health, three times: one entry.
        disclosure("2026-01-10T09:00:00Z", "state-health-dept", "PUBHLTH"),
        disclosure("2026-04-11T09:00:00Z", "state-health-dept", "PUBHLTH", data_elements=["Immunization"]),
        disclosure("2026-07-12T09:00:00Z", "state-health-dept", "PUBHLTH", ids=[EMPI, MRN]),
        # The same recipient for another purpose: another entry.
        disclosure("2026-05-05T09:00:00Z", "state-health-dept", "HRESCH", data_elements=["ZPI"]),
        # An export, named in the event, purpose not stated.
        event(
            [EMPI],
            source="epic-adt",
            destination="county-court",
            occurred_at="2026-06-01T12:00:00Z",
            event_type="export",
            data_elements=["Patient.name", "Condition"],
        ),
    ]
    listed[0]["destination"] = {"system_id": "state-health-dept", "name": "State Department of Health"}
    noise = [
        # Not disclosures: never counted.
        event([MRN], source="epic-adt", destination="lab-lis", occurred_at="2026-02-01T00:00:00Z"),
        # Someone else's disclosure.
        disclosure("2026-02-02T00:00:00Z", "state-health-dept", "PUBHLTH", ids=[OTHER]),
        # The six-year edge for a request on 2026-11-24: the first in, the second out.
        disclosure("2020-11-24T00:00:00Z", "old-registry", "PUBHLTH"),
        disclosure("2020-11-23T23:59:59.999999Z", "older-registry", "PUBHLTH"),
        # After the request date.
        disclosure("2026-11-25T00:00:00Z", "late-recipient", "PUBHLTH"),
        # Around the Privacy Rule's compliance date (14 April 2003).
        disclosure("2003-04-13T23:59:59Z", "early-registry", "PUBHLTH"),
        disclosure("2003-04-14T00:00:00Z", "first-registry", "PUBHLTH"),
    ]
    with service.client(emitter) as client:
        client.post("/v1/events", json={"events": listed + noise + excluded_events()}).raise_for_status()
    return service.client(service.token(Role.PRIVACY_OFFICER))


def accounting(client: httpx.Client, identifier: tuple[str, str] = MRN, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/reports/disclosures",
        json={"identifier": {"system": identifier[0], "value": identifier[1]}, "requested_at": REQUESTED, **body},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_disclosures_are_grouped_by_recipient_and_purpose(officer: httpx.Client) -> None:
    body = accounting(officer)
    entries = [(e["recipient"]["system_id"], e["purpose_code"], e["count"]) for e in body["entries"]]
    assert entries == [
        ("old-registry", "PUBHLTH", 1),
        ("state-health-dept", "PUBHLTH", 3),
        ("state-health-dept", "HRESCH", 1),
        ("county-court", None, 1),
    ]
    health = body["entries"][1]
    assert (health["first_date"], health["last_date"]) == ("2026-01-10T09:00:00.000000Z", "2026-07-12T09:00:00.000000Z")
    assert health["purpose"] == "public health activities"
    assert health["description"] == "test results; vaccinations; your name"
    assert health["recipient"] == {
        "system_id": "state-health-dept",
        "name": "State Department of Health",
        "address": None,
        "registered": False,
    }
    # An unknown code is passed through, quoted; a missing purpose is said so.
    assert body["entries"][2]["description"] == 'other record elements: "ZPI"'
    court = body["entries"][3]
    assert court["purpose"] == "purpose not stated in the record"
    assert court["description"] == "diagnoses and health problems; your name"
    assert court["recipient"]["name"] is None


def test_exclusions_are_counted_by_reason(officer: httpx.Client) -> None:
    body = accounting(officer)
    assert set(body["excluded"]) == set(EXCLUSION_REASONS)
    expected = dict.fromkeys(EXCLUSION_REASONS, 1)
    expected["treatment_payment_operations"] = 3
    expected["facility_directory"] = 2  # HDIRECT, and declared
    expected["before_compliance_date"] = 0
    assert body["excluded"] == expected
    listed = {e["recipient"]["system_id"] for e in body["entries"]}
    assert not listed & {"cardiology-clinic", "payer-acme", "patient-portal", "life-insurer", "front-desk"}


def test_the_period_is_the_six_years_before_the_request(officer: httpx.Client) -> None:
    body = accounting(officer)
    assert body["period"] == {"from": "2020-11-24T00:00:00.000000Z", "to": "2026-11-24T23:59:59.999999Z"}
    listed = {e["recipient"]["system_id"] for e in body["entries"]}
    assert "old-registry" in listed  # exactly six years before
    assert "older-registry" not in listed and "late-recipient" not in listed
    # As of a timestamp: six years before that moment.
    later = accounting(officer, requested_at="2026-11-25T06:00:00Z")
    assert later["period"]["from"] == "2020-11-25T06:00:00.000000Z"
    assert {e["recipient"]["system_id"] for e in later["entries"]} >= {"late-recipient"}
    assert "old-registry" not in {e["recipient"]["system_id"] for e in later["entries"]}


def test_disclosures_before_the_compliance_date_are_excluded(officer: httpx.Client) -> None:
    body = accounting(officer, requested_at="2008-01-01")
    assert [e["recipient"]["system_id"] for e in body["entries"]] == ["first-registry"]
    assert body["excluded"]["before_compliance_date"] == 1


def test_any_linked_identifier_finds_the_same_accounting(officer: httpx.Client) -> None:
    by_mrn, by_empi = accounting(officer, MRN), accounting(officer, EMPI)
    assert by_mrn["entries"] == by_empi["entries"]
    assert {(i["system"], i["value"]) for i in by_empi["patient"]["identifiers"]} == {MRN, EMPI}
    assert OTHER[1] not in json.dumps(by_mrn)


def test_the_delivery_is_recorded_with_counts_only(officer: httpx.Client, service: Service) -> None:
    accounting(officer)
    rows = query(
        str(service.settings.database_url),
        "SELECT record::jsonb AS r FROM events WHERE record::jsonb->'attributes'->>'query' = 'disclosure-accounting'",
    )
    assert len(rows) == 1
    recorded = json.loads(rows[0]["r"]) if isinstance(rows[0]["r"], str) else rows[0]["r"]
    assert recorded["event_type"] == "audit-log-query" and recorded["source"]["system_id"] == "auditsvc"
    assert recorded["attributes"] == {
        "query": "disclosure-accounting",
        "format": "json",
        "requested_at": "2026-11-24T23:59:59.999999Z",
        "period_from": "2020-11-24T00:00:00.000000Z",
        "entries": 4,
        "disclosures_listed": 6,
        "excluded": 12,
        "suspended_recipients": 0,
    }
    assert "state-health-dept" not in json.dumps(recorded)


def test_a_request_dated_near_year_one_is_answered_empty(officer: httpx.Client) -> None:
    body = accounting(officer, requested_at="0003-01-01")
    assert body["entries"] == [] and body["period"]["from"] == "0001-01-02T00:00:00.000000Z"


def test_a_patient_with_no_disclosures_gets_an_empty_accounting(officer: httpx.Client) -> None:
    body = accounting(officer, ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-NOBODY"))
    assert body["entries"] == [] and body["suspended"] == []
    assert sum(body["excluded"].values()) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"requested_at": "2999-01-01"}, "requested_at"),
        ({"requested_at": "yesterday"}, "requested_at"),
        ({"requested_at": "2026-11-24T10:00:00"}, "requested_at"),
        ({"requested_at": "0001-01-01T00:00:00+05:00"}, "requested_at"),
        ({"requested_at": "9999-12-31T23:59:59-05:00"}, "requested_at"),
        ({"requested_at": 1700000000}, "requested_at"),
        ({"identifier": {"system": "urn:x"}}, "identifier"),
        ({"limit": 5}, "limit"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(officer: httpx.Client, body: dict[str, Any], field: str) -> None:
    request = {"identifier": {"system": MRN[0], "value": MRN[1]}, **body}
    response = officer.post("/v1/reports/disclosures", json=request)
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["errors"])
    assert MRN[1] not in response.text


def test_only_a_privacy_officer_may_ask(service: Service) -> None:
    body = {"identifier": {"system": MRN[0], "value": MRN[1]}}
    with service.client() as anonymous:
        assert anonymous.post("/v1/reports/disclosures", json=body).status_code == 401
    for role in (Role.AUDITOR, Role.ADMIN, Role.EMITTER):
        with service.client(service.token(role, ["epic-adt"] if role is Role.EMITTER else None)) as client:
            assert client.post("/v1/reports/disclosures", json=body).status_code == 403


def test_a_registered_recipient_shows_its_name_and_address(officer: httpx.Client, service: Service) -> None:
    entry = {
        "name": "Illinois Department of Public Health",
        "organization": "State of Illinois",
        "address": "535 W Jefferson St, Springfield, IL 62761",
        "relationship": "external_recipient",
        "baa": {"status": "not_required"},
    }
    with service.client(service.token(Role.ADMIN)) as admin:
        assert admin.put("/v1/systems/state-health-dept", json=entry).status_code == 200
    entries = {e["recipient"]["system_id"]: e["recipient"] for e in accounting(officer)["entries"]}
    assert entries["state-health-dept"] == {
        "system_id": "state-health-dept",
        "name": "Illinois Department of Public Health",
        "address": "535 W Jefferson St, Springfield, IL 62761",
        "registered": True,
    }
    # Unregistered: the name the event gave, if any, and no address.
    assert entries["county-court"] == {"system_id": "county-court", "name": None, "address": None, "registered": False}
