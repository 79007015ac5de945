"""A real FHIR client library (SMART on FHIR's ``fhirclient``, R4 models)
against the facade on a live server (uvicorn on loopback): it reads the
CapabilityStatement, searches, follows ``next`` links to the end and reads
one AuditEvent, parsing every answer with its own models."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from fhirclient import client as fhir_client
from fhirclient.models.auditevent import AuditEvent
from fhirclient.models.bundle import Bundle
from fhirclient.models.fhirsearch import FHIRSearch

from auditsvc.domain.tokens import Role

from .conftest import Service, running_service
from .fhir_facade import P1_MRN, P4_EVENTS, P4_MRN, emitter_token, seed_events

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def live(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, dict]]:
    from .fhir_facade import module_settings

    for settings in module_settings(server_url, template_db, tmp_path_factory.mktemp("fhir-client")):
        events = seed_events()
        with running_service(settings) as service:
            emitter = emitter_token(settings)
            with service.client(emitter) as http:
                http.post("/v1/events", json={"events": list(events.values())}).raise_for_status()
            yield service, events


def smart_client(service: Service, role: Role = Role.PRIVACY_OFFICER) -> fhir_client.FHIRClient:
    smart = fhir_client.FHIRClient(settings={"app_id": "auditsvc-tests", "api_base": f"{service.url}/fhir"})
    smart.server.session.headers["Authorization"] = f"Bearer {service.token(role)}"
    return smart


def test_the_client_reads_the_capability_statement(live) -> None:
    service, _ = live
    smart = smart_client(service)
    smart.prepare()  # GET /fhir/metadata, parsed with the client's CapabilityStatement model
    capability = smart.server.capabilityStatement
    assert capability.fhirVersion == "4.0.1"
    [resource] = capability.rest[0].resource
    assert resource.type == "AuditEvent"


def test_the_client_searches_and_pages_to_the_end(live) -> None:
    service, events = live
    smart = smart_client(service)
    search = FHIRSearch(
        AuditEvent, struct={"patient.identifier": "|".join(P4_MRN), "date": "2026-11-27", "_count": "4"}
    )
    pages = list(search.perform_iter(smart.server))
    assert all(isinstance(page, Bundle) and page.type == "searchset" for page in pages)
    found = [entry.resource.id for page in pages for entry in page.entry or []]
    assert found == [events[f"p4-{i}"]["event_id"] for i in range(P4_EVENTS)]
    assert len(pages) == -(-P4_EVENTS // 4)


def test_the_client_reads_one_audit_event(live) -> None:
    service, events = live
    smart = smart_client(service, Role.AUDITOR)
    resource = AuditEvent.read(events["e2"]["event_id"], smart.server)
    assert resource.type.code == "rest"
    assert [a.requestor for a in resource.agent] == [True, False, False]
    assert resource.entity[0].role.code == "1"


def test_the_client_sees_refusals_as_http_errors(live) -> None:
    service, _ = live
    smart = smart_client(service)
    search = FHIRSearch(AuditEvent, struct={"patient.identifier": "|".join(P1_MRN)})
    with pytest.raises(Exception) as refused:  # the client raises requests' HTTPError on a 400
        next(search.perform_iter(smart.server))
    response = refused.value.response
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
    assert "MRN-FHIR" not in response.text


def test_the_facade_speaks_over_real_http(live) -> None:
    service, _ = live
    response = httpx.get(f"{service.url}/fhir/metadata", headers={"Accept": "application/fhir+json"}, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/fhir+json")


def test_the_cli_writes_the_same_bundle(live, tmp_path) -> None:
    from fhir.resources.R4B.bundle import Bundle as R4BBundle

    from .conftest import run_cli

    service, events = live
    out = tmp_path / "patient.json"
    identifier = "|".join(P1_MRN)
    done = run_cli(
        service.settings,
        "report",
        "patient",
        "--identifier",
        identifier,
        "--to",
        "2026-11-30",
        "--format",
        "fhir",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    written = R4BBundle.model_validate_json(out.read_text())
    assert written.type == "searchset"
    ids = [entry.resource.id for entry in written.entry]
    assert ids == [events[name]["event_id"] for name in ("e1", "e2", "e3")]
    with service.client(service.token(Role.PRIVACY_OFFICER)) as http:
        api = http.get("/fhir/AuditEvent", params={"patient.identifier": identifier, "date": "le2026-11-30"}).json()
    # The same AuditEvents the API answers the same search with.
    assert [e["resource"] for e in api["entry"]] == [e["resource"] for e in json.loads(out.read_text())["entry"]]
    assert "MRN-FHIR" not in done.stdout + done.stderr
