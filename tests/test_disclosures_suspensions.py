"""Suspensions of the right to an accounting (§164.528(a)(2)): recorded in
the chain by the service, honoured while in force, lifted when they end."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from auditsvc.domain.disclosures import DisclosureQuery, build_accounting
from auditsvc.domain.suspensions import SuspensionIn, record_suspension
from auditsvc.domain.tokens import Caller, Role
from auditsvc.runtime import open_audit_log
from auditsvc.settings import Settings
from auditsvc.store.engine import runtime_url

from .conftest import Service, query
from .test_disclosures import MRN, OTHER, disclosure

AGENCY = "state-medicaid-fraud-unit"
OFFICER = Caller(token_id="test-officer", role=Role.PRIVACY_OFFICER, systems=(), name="Test Officer")


@pytest.fixture
def disclosed(service: Service) -> Service:
    events = [
        disclosure("2026-10-01T10:00:00Z", AGENCY, "HCOMPL-X"),
        disclosure("2026-10-02T10:00:00Z", AGENCY, "LAW"),
        disclosure("2026-10-03T10:00:00Z", "state-health-dept", "PUBHLTH"),
        disclosure("2026-10-04T10:00:00Z", AGENCY, "LAW", ids=[OTHER]),
    ]
    with service.client(service.token(Role.EMITTER, ["him-release"])) as client:
        client.post("/v1/events", json={"events": events}).raise_for_status()
    return service


def ask(client: httpx.Client, identifier: tuple[str, str] = MRN, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/reports/disclosures", json={"identifier": {"system": identifier[0], "value": identifier[1]}, **body}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def recipients(body: dict[str, Any]) -> list[str]:
    return [e["recipient"]["system_id"] for e in body["entries"]]


def test_a_suspension_withholds_the_agencys_disclosures_while_in_force(disclosed: Service) -> None:
    officer = disclosed.client(disclosed.token(Role.PRIVACY_OFFICER))
    assert AGENCY in recipients(ask(officer))
    response = officer.post(
        "/v1/disclosure-suspensions",
        json={"recipient_system_id": AGENCY, "ends": "2099-01-31", "reference": "Letter OIG-2026-118"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["ends"] == "2099-01-31T23:59:59.999999Z"
    body = ask(officer)
    assert recipients(body) == ["state-health-dept"]
    [suspended] = body["suspended"]
    assert suspended["recipient_system_id"] == AGENCY and suspended["scope"] == "all_patients"
    assert "count" not in suspended  # nothing about the withheld entries
    # Every patient's disclosures to the agency are withheld.
    assert recipients(ask(officer, OTHER)) == []
    # The suspension is an event in the chain, written by the service.
    rows = query(
        str(disclosed.settings.database_url),
        "SELECT record::jsonb AS r FROM events WHERE record::jsonb->>'event_type' = 'disclosure-suspension'",
    )
    recorded = json.loads(rows[0]["r"]) if isinstance(rows[0]["r"], str) else rows[0]["r"]
    assert recorded["source"]["system_id"] == "auditsvc"
    assert recorded["attributes"]["reference"] == "Letter OIG-2026-118"
    assert recorded["actor"]["role"] == "privacy_officer"


def test_a_suspension_for_one_patient_leaves_others_listed(disclosed: Service) -> None:
    admin = disclosed.client(disclosed.token(Role.ADMIN))
    response = admin.post(
        "/v1/disclosure-suspensions",
        json={
            "recipient_system_id": AGENCY,
            "ends": "2099-01-31T00:00:00Z",
            "reference": "Subpoena 26-CV-7",
            "identifier": {"system": MRN[0], "value": MRN[1]},
        },
    )
    assert response.status_code == 201, response.text
    assert MRN[1] not in response.text
    officer = disclosed.client(disclosed.token(Role.PRIVACY_OFFICER))
    assert recipients(ask(officer)) == ["state-health-dept"]
    assert ask(officer)["suspended"][0]["scope"] == "patient"
    assert recipients(ask(officer, OTHER)) == [AGENCY]


def test_a_suspension_is_honoured_only_between_its_statement_and_its_end(
    disclosed: Service, settings: Settings
) -> None:
    async def go() -> tuple[list[str], list[str], list[str], list[str]]:
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            written = SuspensionIn(recipient_system_id=AGENCY, ends="2026-11-20", reference="Letter 1")
            await record_suspension(audit, written, OFFICER, now=datetime(2026, 11, 1, tzinfo=UTC))

            async def as_of(day: str) -> list[str]:
                accounting = await build_accounting(audit, DisclosureQuery(identifier=_id(MRN), requested_at=day))
                return [e["recipient"]["system_id"] for e in accounting.report["entries"]]

            return (
                await as_of("2026-10-31"),
                await as_of("2026-11-10"),
                await as_of("2026-11-20"),
                await as_of("2026-11-21"),
            )

    before, during, last_day, after = asyncio.run(go())
    assert AGENCY in before and AGENCY not in during and AGENCY not in last_day and AGENCY in after


def test_a_later_statement_replaces_an_earlier_one(disclosed: Service, settings: Settings) -> None:
    async def go() -> tuple[list[str], list[str]]:
        async with open_audit_log(settings, runtime_url(settings), background=False) as audit:
            oral = SuspensionIn(
                recipient_system_id=AGENCY, ends="2026-11-25", oral=True, reference="Call", official="Det. Roe"
            )
            await record_suspension(audit, oral, OFFICER, now=datetime(2026, 11, 1, tzinfo=UTC))
            lifted = SuspensionIn(recipient_system_id=AGENCY, ends="2026-11-05", reference="Agency lifts it")
            await record_suspension(audit, lifted, OFFICER, now=datetime(2026, 11, 4, tzinfo=UTC))
            results = []
            for day in ("2026-11-03", "2026-11-10"):
                accounting = await build_accounting(audit, DisclosureQuery(identifier=_id(MRN), requested_at=day))
                results.append([e["recipient"]["system_id"] for e in accounting.report["entries"]])
            return results[0], results[1]

    during_oral, after_lift = asyncio.run(go())
    assert AGENCY not in during_oral and AGENCY in after_lift


def test_an_emitter_cannot_forge_a_suspension(disclosed: Service) -> None:
    forged = disclosure(
        "2026-11-01T00:00:00Z", "auditsvc:disclosure-suspensions", ids=[("urn:auditsvc:disclosure-suspension", AGENCY)]
    )
    forged.update(
        event_type="disclosure-suspension",
        attributes={
            "recipient_system_id": AGENCY,
            "ends": "2099-01-01T00:00:00.000000Z",
            "reference": "forged",
            "scope": "all_patients",
        },
    )
    with disclosed.client(disclosed.token(Role.EMITTER, ["him-release"])) as client:
        client.post("/v1/events", json={"events": [forged]}).raise_for_status()
    officer = disclosed.client(disclosed.token(Role.PRIVACY_OFFICER))
    body = ask(officer)
    assert AGENCY in recipients(body) and body["suspended"] == []


def _id(pair: tuple[str, str]) -> Any:
    return {"system": pair[0], "value": pair[1]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ends": "2020-01-01"}, "ends"),
        ({"ends": "2099-01-01", "oral": True, "official": "Det. Roe"}, "ends"),
        ({"ends": datetime.now(UTC).strftime("%Y-%m-%d"), "oral": True}, "official"),
        ({"recipient_system_id": "auditsvc:x"}, "recipient_system_id"),
        ({"recipient_system_id": "bad id!"}, "recipient_system_id"),
        ({"reference": ""}, "reference"),
        ({"ends": "soon"}, "ends"),
        ({"ends": "9999-12-31"}, "ends"),
        ({"ends": "2099-01-01T00:00:00"}, "ends"),
    ],
)
def test_bad_suspensions_are_refused_naming_the_field(service: Service, body: dict[str, Any], field: str) -> None:
    request = {"recipient_system_id": AGENCY, "ends": "2099-01-01", "reference": "Letter", **body}
    with service.client(service.token(Role.PRIVACY_OFFICER)) as officer:
        response = officer.post("/v1/disclosure-suspensions", json=request)
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["errors"])


def test_only_officers_and_admins_record_suspensions(service: Service) -> None:
    body = {"recipient_system_id": AGENCY, "ends": "2099-01-01", "reference": "Letter"}
    with service.client() as anonymous:
        assert anonymous.post("/v1/disclosure-suspensions", json=body).status_code == 401
    for role in (Role.AUDITOR, Role.EMITTER):
        with service.client(service.token(role, ["him-release"] if role is Role.EMITTER else None)) as client:
            assert client.post("/v1/disclosure-suspensions", json=body).status_code == 403
