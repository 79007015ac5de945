"""The by-system and by-actor reports (issue 15, point 2): counts, counterparts,
data elements, patients, paging, cursors bound to their query, bad input, and
the chain record of every page served."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from auditsvc.domain import access_reports
from auditsvc.domain.tokens import Role

from .conftest import Service, event, query

MRN = "urn:oid:2.16.840.1.113883.3.1234.1.1"
EMPI = "urn:oid:2.16.840.1.113883.3.9999.0"


def patient(n: int) -> list[tuple[str, str]]:
    return [(MRN, f"MRN-AR-{n:04d}")]


@pytest.fixture
def officer(service: Service) -> httpx.Client:
    emitter = service.token(Role.EMITTER, ["epic-adt", "lab-lis", "rad-ris"])
    events = [
        # Patient 1, known under an MRN and (in the second event) its EMPI id too.
        event(patient(1), source="epic-adt", destination="lab-lis", occurred_at="2026-11-01T08:00:00Z"),
        event(
            [*patient(1), (EMPI, "E-AR-0001")],
            source="lab-lis",
            destination="epic-adt",
            occurred_at="2026-11-02T08:00:00Z",
            data_elements=["OBR", "OBX"],
            actor={"id": "u-nurse-7", "type": "user", "role": "nurse"},
        ),
        # The EMPI id alone: still patient 1.
        event([(EMPI, "E-AR-0001")], source="epic-adt", destination="rad-ris", occurred_at="2026-11-03T08:00:00Z"),
        event(patient(2), source="epic-adt", destination="epic-adt", occurred_at="2026-11-04T08:00:00Z"),
        event(
            patient(3),
            source="rad-ris",
            destination="lab-lis",
            occurred_at="2026-11-05T08:00:00Z",
            actor={"id": "u-nurse-7", "type": "user", "role": "nurse"},
        ),
    ]
    with service.client(emitter) as client:
        client.post("/v1/events", json={"events": events}).raise_for_status()
    return service.client(service.token(Role.PRIVACY_OFFICER))


def system_report(client: httpx.Client, system_id: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/reports/system-access", json={"system_id": system_id, **body})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_system_report_counts_patients_counterparts_and_elements(officer: httpx.Client) -> None:
    body = system_report(officer, "epic-adt")
    assert body["system"]["system_id"] == "epic-adt"
    assert body["system"]["registered"] is False
    assert len(body["events"]) == 4  # every event but the radiology-to-lab one
    assert body["patient_count"] == 2  # patient 1 under two identifiers, patient 2
    counterparts = {c["system_id"]: c for c in body["counterparts"]}
    # lab-lis: once as destination (epic-adt -> lab-lis), once as source (lab-lis -> epic-adt)
    assert (counterparts["lab-lis"]["as_source"], counterparts["lab-lis"]["as_destination"]) == (1, 1)
    assert counterparts["lab-lis"]["count"] == 2
    assert (counterparts["rad-ris"]["as_source"], counterparts["rad-ris"]["as_destination"]) == (0, 1)
    # An event from epic-adt to itself: epic-adt counted once, as both.
    assert counterparts["epic-adt"] == {"system_id": "epic-adt", "as_source": 1, "as_destination": 1, "count": 1}
    assert body["data_elements"] == ["OBR", "OBX", "PID", "PV1"]
    assert body["summary"] == {
        "events": 4,
        "complete": True,
        "through": "2026-11-04T08:00:00.000000Z",
        "patient_count": 2,
    }
    assert body["next_cursor"] is None
    patients = [{(i["system"], i["value"]) for i in p["identifiers"]} for p in body["patients"]]
    assert {(MRN, "MRN-AR-0001"), (EMPI, "E-AR-0001")} in patients
    assert {(MRN, "MRN-AR-0002")} in patients
    assert len(patients) == 2


def test_actor_report_lists_the_actors_systems(officer: httpx.Client) -> None:
    response = officer.post("/v1/reports/actor-access", json={"actor_id": "u-nurse-7"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["actor"] == {"actor_id": "u-nurse-7"}
    assert "system" not in body
    assert body["patient_count"] == 2
    counterparts = {c["system_id"]: (c["as_source"], c["as_destination"], c["count"]) for c in body["counterparts"]}
    assert counterparts == {"lab-lis": (1, 1, 2), "epic-adt": (0, 1, 1), "rad-ris": (1, 0, 1)}
    assert [e["actor"]["id"] for e in body["events"]] == ["u-nurse-7", "u-nurse-7"]


def test_period_and_pages(officer: httpx.Client) -> None:
    within = system_report(officer, "epic-adt", **{"from": "2026-11-02", "to": "2026-11-03"})
    assert [e["occurred_at"][:10] for e in within["events"]] == ["2026-11-02", "2026-11-03"]
    assert within["patient_count"] == 1
    seen: list[str] = []
    body = system_report(officer, "epic-adt", limit=1)
    pages = 1
    while True:
        seen.extend(e["event_id"] for e in body["events"])
        if body["next_cursor"] is None:
            break
        body = system_report(officer, "epic-adt", limit=1, cursor=body["next_cursor"])
        pages += 1
        assert body["patient_count"] is body["summary"] is body["counterparts"] is None  # first page only
    assert len(seen) == len(set(seen)) == 4
    assert pages == 4


def test_each_page_served_is_recorded_once_with_its_bounds(officer: httpx.Client, service: Service) -> None:
    first = system_report(officer, "lab-lis", limit=2)
    system_report(officer, "lab-lis", limit=2, cursor=first["next_cursor"])
    rows = query(
        str(service.settings.database_url),
        "SELECT e.record::jsonb AS r FROM event_facts f JOIN events e USING (log_id, seq) "
        "WHERE f.source_system = 'auditsvc' AND f.event_type = 'audit-log-query' ORDER BY f.seq",
    )
    import json

    records = [json.loads(r["r"]) if isinstance(r["r"], str) else r["r"] for r in rows]
    pages = [r for r in records if r["attributes"].get("query") == "system-access-report"]
    assert len(pages) == 2
    assert {r["patient"]["identifiers"][0]["system"] for r in pages} == {"urn:auditsvc:system-access"}
    a, b = (r["attributes"] for r in pages)
    assert a["subject"] == b["subject"] == "lab-lis"
    assert a["as_of"] == b["as_of"]
    assert (a["first_at"][:10], a["last_at"][:10]) == ("2026-11-01", "2026-11-02")
    assert (b["first_at"][:10], b["last_at"][:10]) == ("2026-11-05", "2026-11-05")
    assert "MRN-AR" not in json.dumps(records)  # identifiers sealed in the chain


def test_a_cursor_only_continues_its_own_report(officer: httpx.Client) -> None:
    cursor = system_report(officer, "epic-adt", limit=1)["next_cursor"]
    patient_cursor = officer.post(
        "/v1/reports/patient-access", json={"identifier": {"system": MRN, "value": "MRN-AR-0001"}, "limit": 1}
    ).json()["next_cursor"]
    for path, body in [
        ("/v1/reports/system-access", {"system_id": "lab-lis", "cursor": cursor}),  # another system
        ("/v1/reports/system-access", {"system_id": "epic-adt", "from": "2026-11-02", "cursor": cursor}),
        ("/v1/reports/actor-access", {"actor_id": "u-nurse-7", "cursor": cursor}),  # another report
        ("/v1/reports/system-access", {"system_id": "epic-adt", "cursor": patient_cursor}),
        ("/v1/reports/patient-access", {"identifier": {"system": MRN, "value": "MRN-AR-0001"}, "cursor": cursor}),
        ("/v1/reports/system-access", {"system_id": "epic-adt", "cursor": "bm90LWEtY3Vyc29y"}),
    ]:
        response = officer.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["errors"][0]["loc"] == ["cursor"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/reports/system-access", {"system_id": "no-such-system"}, "system_id"),
        ("/v1/reports/system-access", {"system_id": "bad id with spaces"}, "system_id"),
        ("/v1/reports/system-access", {}, "system_id"),
        ("/v1/reports/actor-access", {"actor_id": "nobody-at-all"}, "actor_id"),
        ("/v1/reports/system-access", {"system_id": "epic-adt", "from": "2026-11-05", "to": "2026-11-01"}, "from"),
        ("/v1/reports/system-access", {"system_id": "epic-adt", "limit": 0}, "limit"),
        ("/v1/reports/system-access", {"system_id": "epic-adt", "surprise": 1}, "surprise"),
    ],
)
def test_bad_input_names_the_field(officer: httpx.Client, path: str, body: dict[str, Any], field: str) -> None:
    response = officer.post(path, json=body)
    assert response.status_code == 422, response.text
    assert field in {str(e["loc"][-1]) for e in response.json()["errors"]}


def test_unknown_format_is_refused(officer: httpx.Client) -> None:
    response = officer.post("/v1/reports/system-access?format=xlsx", json={"system_id": "epic-adt"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "format"]


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.EMITTER, Role.ADMIN])
def test_only_privacy_officers(service: Service, role: Role) -> None:
    with service.client(service.token(role, ["epic-adt"] if role is Role.EMITTER else None)) as client:
        assert client.post("/v1/reports/system-access", json={"system_id": "epic-adt"}).status_code == 403
        assert client.post("/v1/reports/actor-access", json={"actor_id": "x"}).status_code == 403
    with service.client() as anonymous:
        assert anonymous.post("/v1/reports/system-access", json={"system_id": "epic-adt"}).status_code == 401


def test_a_registered_system_shows_its_entry_even_with_no_events(officer: httpx.Client, service: Service) -> None:
    entry = {
        "name": "County Health Dept",
        "relationship": "external_recipient",
        "baa": {"status": "not_required"},
    }
    with service.client(service.token(Role.ADMIN)) as admin:
        admin.put("/v1/systems/lab-lis", json={**entry, "name": "Lab LIS"}).raise_for_status()
        admin.put("/v1/systems/county-health", json=entry).raise_for_status()
    lab = system_report(officer, "lab-lis")["system"]
    assert (lab["registered"], lab["name"]) == (True, "Lab LIS")
    quiet = system_report(officer, "county-health")
    assert (quiet["system"]["registered"], quiet["patient_count"], quiet["events"]) == (True, 0, [])


def patient_report(client: httpx.Client, identifier: tuple[str, str]) -> dict[str, Any]:
    response = client.post(
        "/v1/reports/patient-access", json={"identifier": {"system": identifier[0], "value": identifier[1]}}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def revealed(client: httpx.Client, n: int) -> list[tuple[str, str, str]]:
    runs = patient_report(client, patient(n)[0])["revealed_by"]
    return [(r["report"], r["subject"], r["format"]) for r in runs]


def test_a_patient_finds_every_report_page_that_listed_them(officer: httpx.Client) -> None:
    assert revealed(officer, 1) == revealed(officer, 3) == []
    # rad-ris: patient 1 on 2026-11-03 (under the EMPI id alone), then patient 3 on 2026-11-05.
    first = system_report(officer, "rad-ris", limit=1)
    assert revealed(officer, 1) == [("system-access", "rad-ris", "json")]
    assert revealed(officer, 3) == []  # on the next page, not yet served
    system_report(officer, "rad-ris", limit=1, cursor=first["next_cursor"])
    assert revealed(officer, 3) == [("system-access", "rad-ris", "json")]
    assert revealed(officer, 1) == [("system-access", "rad-ris", "json")]  # the second page did not list them
    # A CSV export of a period and an actor's report.
    officer.post("/v1/reports/system-access?format=csv", json={"system_id": "lab-lis", "from": "2026-11-05"})
    officer.post("/v1/reports/actor-access", json={"actor_id": "u-nurse-7", "to": "2026-11-02"})
    assert revealed(officer, 3) == [("system-access", "rad-ris", "json"), ("system-access", "lab-lis", "csv")]
    assert revealed(officer, 1)[1:] == [("actor-access", "u-nurse-7", "json")]
    assert revealed(officer, 2) == []
    run = patient_report(officer, patient(3)[0])["revealed_by"][0]
    assert run["by"]["role"] == "privacy_officer" and run["event_id"] and run["at"]


def test_past_its_cap_the_summary_says_what_it_covered(officer: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_reports, "SUMMARY_CAP", 2)  # the service runs in this process
    body = system_report(officer, "epic-adt")
    assert body["summary"] == {
        "events": 2,
        "complete": False,
        "through": "2026-11-02T08:00:00.000000Z",
        "patient_count": 1,
    }
    assert len(body["events"]) == 4  # the pages are whole; only the summary stops at the cap
