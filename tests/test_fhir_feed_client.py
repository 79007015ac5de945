"""A real FHIR client library feeds the facade (ITI-20): fhirclient's R4
models create an AuditEvent and post a transaction Bundle to the service
over HTTP, as a FHIR-native system would without our SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fhirclient.models.auditevent import AuditEvent
from fhirclient.models.bundle import Bundle
from fhirclient.server import FHIRServer

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from . import fhir_feed_samples as s
from .conftest import Service, query, running_service

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def live(server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from .fhir_facade import module_settings

    for settings in module_settings(server_url, template_db, tmp_path_factory.mktemp("fhir-feed-client")):
        with running_service(settings) as service:
            yield service


def fhir_server(service: Service, role: Role = Role.EMITTER) -> FHIRServer:
    server = FHIRServer(None, base_uri=f"{service.url}/fhir/")
    server.session.headers["Authorization"] = f"Bearer {service.token(role, ['epic-adt'])}"
    return server


def stored(settings: Settings) -> int:
    return int(query(str(settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"])


def test_fhirclient_creates_an_audit_event(live: Service) -> None:
    sample = s.patient_read()
    del sample["id"]  # a client creates without an id (R4 AuditEvent has no identifier either)
    before = stored(live.settings)
    created = AuditEvent(sample).create(fhir_server(live))
    assert created is not None and AuditEvent(created).id
    assert stored(live.settings) == before + 1


def test_fhirclient_posts_a_transaction_bundle(live: Service) -> None:
    entries = []
    for resource in (s.patient_read("client-tx-1"), s.patient_query("client-tx-2")):
        entries.append({"resource": resource, "request": {"method": "POST", "url": "AuditEvent"}})
    bundle = Bundle({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    before = stored(live.settings)
    answer = Bundle(bundle.create(fhir_server(live)))
    assert answer.type == "transaction-response"
    assert [e.response.status for e in answer.entry] == ["201 Created", "201 Created"]
    assert stored(live.settings) == before + 2
