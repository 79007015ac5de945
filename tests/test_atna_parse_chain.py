"""Events mapped from ATNA messages land in the one chain and are found by the same reports (issue 19, item 5).

The corpus (tests/corpus/atna) goes through the mapper and ``POST /v1/events``
as the syslog listener appends it, on a real database with the API in
process; a resend (new syslog header, BOM, another transport) stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from auditsvc.domain.atna import AtnaOrigin, map_audit_message
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import make_token
from .fhir_facade import Facade, facade, module_settings

pytestmark = pytest.mark.db

CORPUS = Path(__file__).parent / "corpus" / "atna"
MAPPED = [p for p in sorted(CORPUS.glob("*.xml")) if "events" in json.loads(p.with_suffix(".json").read_text())]
ORIGIN = AtnaOrigin(transport="tls", peer="ehr-app", msgid="IHE+RFC-3881")
RESENT = AtnaOrigin(transport="udp", peer="192.0.2.7", msgid="DICOM+RFC3881")


def corpus_events(origin: AtnaOrigin = ORIGIN, prefix: bytes = b"") -> list[list[dict[str, Any]]]:
    return [map_audit_message(prefix + p.read_bytes(), origin) for p in MAPPED]


@pytest.fixture(scope="module")
def settings_and_tokens(
    server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[Role, str]]]:
    sources = sorted({e["source"]["system_id"] for events in corpus_events() for e in events})
    for settings in module_settings(server_url, template_db, tmp_path_factory.mktemp("atna-chain")):
        yield (
            settings,
            {
                Role.EMITTER: make_token(settings, Role.EMITTER, sources, name="ATNA syslog listener"),
                Role.PRIVACY_OFFICER: make_token(settings, Role.PRIVACY_OFFICER),
            },
        )


@pytest_asyncio.fixture(scope="module")
async def api(settings_and_tokens: tuple[Settings, dict[Role, str]]) -> AsyncIterator[Facade]:
    settings, tokens = settings_and_tokens
    async with facade(settings, tokens) as running:
        yield running


async def append(api: Facade, events: list[dict[str, Any]]) -> list[str]:
    response = await api.http.post("/v1/events", json={"events": events}, headers=api.auth(Role.EMITTER))
    assert response.status_code == 200, response.text
    return [r["status"] for r in response.json()["results"]]


async def officer(api: Facade, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.http.post(path, json=body, headers=api.auth(Role.PRIVACY_OFFICER))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_corpus_events_are_appended_once_and_found_by_the_patient_report(api: Facade) -> None:
    batches = corpus_events()
    for events in batches:
        assert await append(api, events) == ["accepted"] * len(events)
    for events in corpus_events(RESENT, prefix=b"\xef\xbb\xbf"):
        assert await append(api, events) == ["duplicate"] * len(events)
    for event in (e for events in batches for e in events):
        identifier = event["patient"]["identifiers"][0]
        report = await officer(api, "/v1/reports/patient-access", {"identifier": identifier})
        [found] = [e for e in report["events"] if e["event_id"] == event["event_id"]]
        assert found["attributes"]["origin"] == "atna-syslog"
        assert found["attributes"]["atna_event_id"] == event["attributes"]["atna_event_id"]
        assert found["event_type"] == event["event_type"]
        assert {s["system_id"] for s in report["systems"]} >= {event["source"]["system_id"]}


async def test_a_disclosure_from_syslog_is_in_the_patients_accounting(api: Facade) -> None:
    [event] = map_audit_message((CORPUS / "dicom-disclosure.xml").read_bytes(), ORIGIN)
    await append(api, [event])  # accepted, or a duplicate of the first test's
    accounting = await officer(api, "/v1/reports/disclosures", {"identifier": event["patient"]["identifiers"][0]})
    [entry] = accounting["entries"]
    assert entry["recipient"]["system_id"] == "state-immunization-registry"
    assert entry["count"] == 1


async def test_an_emergency_override_from_syslog_is_in_the_break_glass_queue(api: Facade) -> None:
    [event] = map_audit_message((CORPUS / "rfc3881-break-glass.xml").read_bytes(), ORIGIN)
    await append(api, [event])  # accepted, or a duplicate of the first test's
    response = await api.http.get(
        "/v1/reviews/break-glass", params={"status": "unreviewed"}, headers=api.auth(Role.PRIVACY_OFFICER)
    )
    assert response.status_code == 200, response.text
    assert event["event_id"] in [item["event"]["event_id"] for item in response.json()["items"]]


async def test_syslog_events_are_found_by_the_fhir_audit_event_search(api: Facade) -> None:
    [event] = map_audit_message((CORPUS / "dicom-pix-query.xml").read_bytes(), ORIGIN)
    await append(api, [event])  # accepted, or a duplicate of the first test's
    identifier = event["patient"]["identifiers"][0]
    params = [("patient.identifier", f"{identifier['system']}|{identifier['value']}"), ("date", "ge2026-11-24")]
    found = await api.http.get("/fhir/AuditEvent", params=params, headers=api.auth(Role.PRIVACY_OFFICER))
    assert found.status_code == 200, found.text
    bundle = found.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    # The privacy office's own reads of this patient (earlier tests) are events of the chain too.
    assert event["event_id"] in [e["resource"]["id"] for e in bundle["entry"]]
