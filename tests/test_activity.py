"""The activity review record (issue 15, point 5): who ran which report,
export or review, read from the chain; its own run recorded; no PHI."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from auditsvc.domain.tokens import Role

from .conftest import Service, event

MRN = ("urn:oid:2.16.840.1.113883.3.1234.1.1", "MRN-ACT-0001")


@pytest.fixture
def examined(service: Service) -> Service:
    with service.client(service.token(Role.EMITTER, ["epic-adt"])) as emitter:
        emitter.post(
            "/v1/events", json={"events": [event([MRN], occurred_at="2026-11-01T08:00:00Z")]}
        ).raise_for_status()
    with service.client(service.token(Role.PRIVACY_OFFICER)) as officer:
        officer.post(
            "/v1/reports/patient-access", json={"identifier": {"system": MRN[0], "value": MRN[1]}}
        ).raise_for_status()
        officer.post("/v1/reports/system-access", json={"system_id": "epic-adt"}).raise_for_status()
    return service


def activity(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/reports/activity", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_lists_who_ran_which_report_and_records_its_own_run(examined: Service) -> None:
    with examined.client(examined.token(Role.AUDITOR)) as auditor:
        first = activity(auditor)
        kinds = [a["activity"] for a in first["activity"]]
        assert kinds == ["patient-access-report", "system-access-report"]
        assert {a["actor"]["role"] for a in first["activity"]} == {"privacy_officer"}
        system_run = first["activity"][1]
        assert system_run["details"]["subject"] == "epic-adt"
        assert system_run["channel"] == "privacy_officer"
        assert MRN[1] not in str(first)  # no patient identifier, even sealed
        assert "value_enc" not in str(first)
        second = activity(auditor)
        assert [a["activity"] for a in second["activity"]][-1] == "activity-report"
        assert second["activity"][-1]["actor"]["role"] == "auditor"


def test_period_and_pages(examined: Service) -> None:
    with examined.client(examined.token(Role.PRIVACY_OFFICER)) as officer:
        assert activity(officer, **{"from": "2020-01-01", "to": "2020-12-31"})["activity"] == []
        page = activity(officer, limit=1)
        assert len(page["activity"]) == 1 and page["next_cursor"]
        rest = activity(officer, limit=10, cursor=page["next_cursor"])
        # The snapshot of the first page: the two reports and the run over 2020,
        # not this report's own pages since.
        assert [a["activity"] for a in rest["activity"]] == ["system-access-report", "activity-report"]
        assert rest["next_cursor"] is None
        bad = officer.post("/v1/reports/activity", json={"cursor": page["next_cursor"], "from": "2026-01-01"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["cursor"]
        reversed_ = officer.post("/v1/reports/activity", json={"from": "2026-12-01", "to": "2026-11-01"})
        assert reversed_.status_code == 422 and reversed_.json()["errors"][0]["loc"] == ["from"]


def test_csv(examined: Service) -> None:
    with examined.client(examined.token(Role.AUDITOR)) as auditor:
        response = auditor.post("/v1/reports/activity?format=csv", json={})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["activity"] for r in rows] == ["patient-access-report", "system-access-report"]
        assert "subject=epic-adt" in rows[1]["details"]


@pytest.mark.parametrize("role", [Role.EMITTER, Role.ADMIN])
def test_roles(service: Service, role: Role) -> None:
    with service.client(service.token(role, ["epic-adt"] if role is Role.EMITTER else None)) as client:
        assert client.post("/v1/reports/activity", json={}).status_code == 403
    with service.client() as anonymous:
        assert anonymous.post("/v1/reports/activity", json={}).status_code == 401
