"""The ITI-20 FHIR feed over HTTP (api/routes/fhir_feed.py): POST
/fhir/AuditEvent and POST /fhir with batch, transaction and collection
Bundles, on a real database. Every answer parses with the R4B models."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from . import fhir_feed_samples as s
from .conftest import fetch, make_token
from .fhir_facade import Facade, facade, module_settings, role_tokens

pytestmark = pytest.mark.db

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def settings_and_tokens(
    server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[Role, str]]]:
    for settings in module_settings(server_url, template_db, tmp_path_factory.mktemp("fhir-feed")):
        yield settings, role_tokens(settings)


@pytest_asyncio.fixture(scope="module")
async def api(settings_and_tokens: tuple[Settings, dict[Role, str]]) -> AsyncIterator[Facade]:
    settings, tokens = settings_and_tokens
    async with facade(settings, tokens) as running:
        yield running


@pytest.fixture(scope="module")
def lab_token(settings_and_tokens: tuple[Settings, dict[Role, str]]) -> str:
    """An emitter token bound to one system only."""
    return make_token(settings_and_tokens[0], Role.EMITTER, ["lab-lis"])


async def stored(api: Facade) -> int:
    [row] = await fetch(str(api.settings.database_url), "SELECT count(*) AS n FROM events")
    return int(row["n"])


async def post(api: Facade, path: str, body: Any, role: Role = Role.EMITTER, **headers: str) -> Any:
    return await api.http.post(path, content=json.dumps(body).encode(), headers={**FHIR, **api.auth(role), **headers})


def outcome(response: Any) -> OperationOutcome:
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8", response.headers
    return OperationOutcome.model_validate(response.json())


def refused(response: Any, status: int, expression: str, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    [issue] = outcome(response).issue
    assert issue.expression == [expression]
    assert code is None or issue.code == code
    assert s.MRN not in response.text  # no PHI quoted


async def report(api: Facade, value: str) -> dict[str, Any]:
    response = await api.http.post(
        "/v1/reports/patient-access",
        json={"identifier": {"system": s.MRN_SYSTEM, "value": value}},
        headers=api.auth(Role.PRIVACY_OFFICER),
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def with_mrn(resource: dict[str, Any], value: str) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    out["entity"][0]["what"]["identifier"]["value"] = value
    return out


@pytest.mark.parametrize(
    "resource",
    [
        s.patient_read("api-read"),
        s.patient_query("api-query"),
        s.patient_change("C", "api-create"),
        s.patient_change("U", "api-update"),
        s.patient_change("D", "api-delete"),
        s.privacy_disclosure("api-disclosure"),
        s.break_glass("api-btg"),
    ],
    ids=lambda r: r["id"],
)
async def test_each_balp_profile_is_stored_and_found_by_the_patient_report(api: Facade, resource) -> None:
    mrn = f"MRN-{resource['id']}"
    response = await post(api, "/fhir/AuditEvent", with_mrn(resource, mrn))
    assert response.status_code == 201, response.text
    kept = AuditEvent.model_validate(response.json())
    assert response.headers["location"] == f"/fhir/AuditEvent/{kept.id}"
    found = await report(api, mrn)
    [event] = found["events"]
    assert event["event_id"] == kept.id
    assert event["attributes"]["origin"] == "fhir-iti20" and event["attributes"]["fhir_id"] == resource["id"]


async def test_a_resend_by_id_or_identifier_stores_nothing_twice(api: Facade) -> None:
    resource = with_mrn(s.patient_read("resend-1"), "MRN-RESEND")
    first = await post(api, "/fhir/AuditEvent", resource)
    assert first.status_code == 201
    before = await stored(api)
    again = await post(api, "/fhir/AuditEvent", resource)
    assert again.status_code == 200 and again.headers["location"] == first.headers["location"]
    assert await stored(api) == before
    # The same business identifier under two ids is one AuditEvent.
    one = with_mrn(s.patient_read("resend-2"), "MRN-RESEND")
    one["identifier"] = {"system": "urn:example:audit", "value": "ae-resend"}
    two = {**copy.deepcopy(one), "id": "resend-3"}
    assert (await post(api, "/fhir/AuditEvent", one)).status_code == 201
    assert (await post(api, "/fhir/AuditEvent", two)).status_code == 200
    assert await stored(api) == before + 1
    assert len((await report(api, "MRN-RESEND"))["events"]) == 2


async def test_one_event_per_patient(api: Facade) -> None:
    resource = s.with_patients(s.patient_read("multi-1"), "MRN-MULTI-1", "MRN-MULTI-2")
    before = await stored(api)
    response = await post(api, "/fhir/AuditEvent", resource)
    assert response.status_code == 201
    assert await stored(api) == before + 2
    assert len((await report(api, "MRN-MULTI-2"))["events"]) == 1


@pytest.mark.parametrize("prefer", ["return=minimal", "return=OperationOutcome", "return=representation"])
async def test_prefer_return_is_honoured(api: Facade, prefer: str) -> None:
    resource = with_mrn(s.patient_read(f"prefer-{prefer}"), "MRN-PREFER")
    response = await post(api, "/fhir/AuditEvent", resource, Prefer=prefer)
    assert response.status_code == 201 and response.headers["location"].startswith("/fhir/AuditEvent/")
    if prefer == "return=minimal":
        assert response.content == b""
    elif prefer == "return=OperationOutcome":
        [issue] = outcome(response).issue
        assert issue.severity == "information" and "stored as 1 event" in issue.diagnostics
    else:
        AuditEvent.model_validate(response.json())


@pytest.mark.parametrize(
    ("change", "status", "expression"),
    [
        (lambda r: r.pop("recorded"), 400, "AuditEvent.recorded"),
        (lambda r: r.update(resourceType="Observation"), 400, "AuditEvent.resourceType"),
        (lambda r: r.update(outcome="2"), 400, "AuditEvent.outcome"),
        (lambda r: r["entity"][0]["what"].pop("identifier"), 422, "AuditEvent.entity[0].what.identifier"),
        (lambda r: r.update(entity=[s.data_entity("Observation/o")]), 422, "AuditEvent.entity"),
    ],
)
async def test_malformed_resources_get_an_operation_outcome_naming_the_element(
    api: Facade, change, status: int, expression: str
) -> None:
    resource = s.patient_read("malformed")
    change(resource)
    before = await stored(api)
    refused(await post(api, "/fhir/AuditEvent", resource), status, expression)
    assert await stored(api) == before


async def test_a_source_the_token_may_not_write_as_is_refused_with_403(api: Facade) -> None:
    resource = s.patient_read("not-mine")
    resource["agent"][1] = s.role_agent("110153", "someone-else", "https://other.example.org")
    refused(await post(api, "/fhir/AuditEvent", resource), 403, "AuditEvent.agent[1].who.identifier.value", "forbidden")
    resource["agent"][1] = s.role_agent("110153", "auditsvc", "https://other.example.org")  # reserved
    refused(await post(api, "/fhir/AuditEvent", resource), 403, "AuditEvent.agent[1].who.identifier.value")


@pytest.fixture(scope="module")
def client_token(settings_and_tokens: tuple[Settings, dict[Role, str]]) -> str:
    """An emitter token bound to the FHIR client's system only."""
    return make_token(settings_and_tokens[0], Role.EMITTER, [s.CLIENT])


async def test_the_querying_system_may_report_its_own_query(api: Facade, client_token: str) -> None:
    # BALP: the results of a query flow from the server (the event's source)
    # to the client that asked, which audits the query with its own token.
    resource = with_mrn(s.patient_query("client-side-query"), "MRN-CLIENT-QUERY")
    response = await api.http.post(
        "/fhir/AuditEvent", content=json.dumps(resource), headers={**FHIR, "Authorization": f"Bearer {client_token}"}
    )
    assert response.status_code == 201, response.text
    [event] = (await report(api, "MRN-CLIENT-QUERY"))["events"]
    assert (event["source"]["system_id"], event["destination"]["system_id"]) == (s.SERVER, s.CLIENT)
    # a read the client was no party to is still refused
    foreign = s.patient_read("client-not-a-party")
    foreign["agent"][0] = s.role_agent("110152", "someone-else", "2001:db8::1")
    response = await api.http.post(
        "/fhir/AuditEvent", content=json.dumps(foreign), headers={**FHIR, "Authorization": f"Bearer {client_token}"}
    )
    assert response.status_code == 403, response.text


async def test_the_source_comes_from_a_single_system_token_when_no_agent_names_it(api: Facade, lab_token: str) -> None:
    token = lab_token
    resource = with_mrn(s.patient_read("from-token"), "MRN-FROM-TOKEN")
    resource["agent"] = [s.user_agent()]
    response = await api.http.post(
        "/fhir/AuditEvent", content=json.dumps(resource), headers={**FHIR, "Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    [event] = (await report(api, "MRN-FROM-TOKEN"))["events"]
    assert event["source"]["system_id"] == "lab-lis"
    assert "source_from_token" in event["attributes"]["assumed"]


@pytest.mark.parametrize("role", [Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN])
async def test_only_emitters_may_feed(api: Facade, role: Role) -> None:
    for path, body in (("/fhir/AuditEvent", s.patient_read()), ("/fhir", {"resourceType": "Bundle"})):
        response = await post(api, path, body, role)
        assert response.status_code == 403
        assert outcome(response).issue[0].code == "forbidden"
    response = await api.http.post("/fhir/AuditEvent", content=b"{}", headers=FHIR)
    assert response.status_code == 401


async def test_other_media_types_get_415(api: Facade) -> None:
    response = await api.http.post(
        "/fhir/AuditEvent",
        content=b"<AuditEvent xmlns='http://hl7.org/fhir'/>",
        headers={"Content-Type": "application/fhir+xml", **api.auth(Role.EMITTER)},
    )
    assert response.status_code == 415 and outcome(response).issue[0].code == "not-supported"
    ok = await post(
        api,
        "/fhir/AuditEvent",
        with_mrn(s.patient_read("plain-json"), "MRN-JSON"),
        **{"Content-Type": "application/json"},
    )
    assert ok.status_code == 201


async def test_huge_deep_and_broken_json_are_refused_before_parsing(api: Facade) -> None:
    deep = b'{"resourceType": "AuditEvent", "extension": ' + b"[" * 200 + b"]" * 200 + b"}"
    response = await api.http.post("/fhir/AuditEvent", content=deep, headers={**FHIR, **api.auth(Role.EMITTER)})
    assert response.status_code == 422 and "nested deeper" in outcome(response).issue[0].diagnostics
    huge = b'{"resourceType": "AuditEvent", "id": "' + b"x" * (api.settings.max_body_bytes + 1) + b'"}'
    response = await api.http.post("/fhir/AuditEvent", content=huge, headers={**FHIR, **api.auth(Role.EMITTER)})
    assert response.status_code == 413 and outcome(response).issue[0].code == "too-costly"
    response = await api.http.post("/fhir/AuditEvent", content=b"{not json", headers={**FHIR, **api.auth(Role.EMITTER)})
    assert response.status_code == 400 and outcome(response).issue[0].code == "structure"


def entry(resource: Any, method: str = "POST", url: str = "AuditEvent") -> dict[str, Any]:
    return {"resource": resource, "request": {"method": method, "url": url}}


async def test_a_batch_answers_each_entry_and_failures_do_not_stop_the_others(api: Facade) -> None:
    good = with_mrn(s.patient_read("batch-1"), "MRN-BATCH")
    bad = s.patient_read("batch-2")
    del bad["recorded"]
    other = with_mrn(s.privacy_disclosure("batch-3"), "MRN-BATCH")
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [entry(good), entry(bad), entry(other), entry(other, method="PUT"), entry(good)],
    }
    before = await stored(api)
    response = await post(api, "/fhir", bundle)
    assert response.status_code == 200, response.text
    answer = Bundle.model_validate(response.json())
    assert answer.type == "batch-response"
    statuses = [e.response.status for e in answer.entry]
    assert statuses == ["201 Created", "400 Bad Request", "201 Created", "400 Bad Request", "200 OK"]
    assert answer.entry[1].response.outcome.issue[0].expression == ["Bundle.entry[1].resource.recorded"]
    assert answer.entry[3].response.outcome.issue[0].expression == ["Bundle.entry[3].request.method"]
    assert answer.entry[0].response.location.startswith("AuditEvent/")
    assert await stored(api) == before + 2
    assert s.MRN not in response.text


async def test_a_collection_is_taken_as_a_batch(api: Facade) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": with_mrn(s.patient_read("coll-1"), "MRN-COLL")}, {"resource": {"resourceType": "X"}}],
    }
    response = await post(api, "/fhir", bundle)
    answer = Bundle.model_validate(response.json())
    assert answer.type == "batch-response"
    assert [e.response.status for e in answer.entry] == ["201 Created", "400 Bad Request"]


async def test_a_transaction_stores_all_or_nothing(api: Facade) -> None:
    first = with_mrn(s.patient_read("tx-1"), "MRN-TX")
    second = with_mrn(s.patient_query("tx-2"), "MRN-TX")
    broken = with_mrn(s.patient_read("tx-3"), "MRN-TX")
    broken["entity"][0]["what"] = {"display": "Jane Test"}
    before = await stored(api)
    response = await post(
        api,
        "/fhir",
        {"resourceType": "Bundle", "type": "transaction", "entry": [entry(first), entry(second), entry(broken)]},
    )
    refused(response, 422, "Bundle.entry[2].resource.entity[0].what.identifier")
    assert "nothing was stored" in outcome(response).issue[0].diagnostics
    assert await stored(api) == before
    assert (await report(api, "MRN-TX"))["events"] == []
    before = await stored(api)  # the report is itself recorded
    response = await post(
        api, "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [entry(first), entry(second)]}
    )
    answer = Bundle.model_validate(response.json())
    assert answer.type == "transaction-response"
    assert [e.response.status for e in answer.entry] == ["201 Created", "201 Created"]
    assert await stored(api) == before + 2


async def test_a_transaction_with_a_foreign_source_is_refused_whole(api: Facade) -> None:
    foreign = s.patient_read("tx-foreign")
    foreign["agent"][1] = s.role_agent("110153", "someone-else", "https://other.example.org")
    before = await stored(api)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry(s.patient_read("tx-ok")), entry(foreign)],
    }
    refused(await post(api, "/fhir", bundle), 403, "Bundle.entry[1].resource.agent[1].who.identifier.value")
    assert await stored(api) == before


@pytest.mark.parametrize(
    ("bundle", "expression"),
    [
        ({"resourceType": "AuditEvent"}, "Bundle.resourceType"),
        ({"resourceType": "Bundle", "type": "searchset"}, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "batch", "entry": {"oops": 1}}, "Bundle.entry[0].request"),
    ],
)
async def test_bundles_that_are_not_feeds_are_refused(api: Facade, bundle: Any, expression: str) -> None:
    response = await post(api, "/fhir", bundle)
    if bundle.get("type") == "batch":  # a batch answers per entry
        answer = Bundle.model_validate(response.json())
        assert answer.entry[0].response.outcome.issue[0].expression == [expression]
    else:
        refused(response, 400, expression)


async def test_a_request_stores_at_most_the_batch_limit_of_events(api: Facade) -> None:
    limit = api.settings.max_batch_events
    before = await stored(api)
    # More entities than a JSON array may hold: refused by the body limits, before mapping.
    resource = s.with_patients(s.patient_read("too-many"), *(f"MRN-MANY-{i}" for i in range(limit + 1)))
    response = await post(api, "/fhir/AuditEvent", resource)
    assert response.status_code == 422 and outcome(response).issue[1].expression == ["entity"]
    # Within the entry limit, over the event limit (two patients an entry).
    pair = s.with_patients(s.patient_read("pair"), "MRN-PAIR-1", "MRN-PAIR-2")
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [entry(pair)] * (limit // 2 + 1)}
    refused(await post(api, "/fhir", bundle), 413, "Bundle.entry", "too-costly")
    assert await stored(api) == before


async def test_fed_events_are_found_by_the_fhir_search_and_read(api: Facade) -> None:
    resource = with_mrn(s.patient_query("round-trip"), "MRN-ROUND-TRIP")
    response = await post(api, "/fhir/AuditEvent", resource)
    assert response.status_code == 201
    event_id = response.headers["location"].rsplit("/", 1)[1]
    params = [
        ("patient.identifier", f"{s.MRN_SYSTEM}|MRN-ROUND-TRIP"),
        ("date", "ge2026-11-24"),
        ("date", "lt2026-11-25"),
    ]
    found = await api.http.get("/fhir/AuditEvent", params=params, headers=api.auth(Role.PRIVACY_OFFICER))
    assert found.status_code == 200, found.text
    bundle = Bundle.model_validate(found.json())
    [hit] = bundle.entry
    assert hit.resource.id == event_id
    read = await api.http.get(f"/fhir/AuditEvent/{event_id}", headers=api.auth(Role.AUDITOR))
    event = AuditEvent.model_validate(read.json())
    assert event.action == "E" and event.period.start.isoformat().startswith("2026-11-24T09:30:00.123")
    # What the facade serves is what was fed: the same systems, and the patient.
    agents = {a.type.coding[0].code: a.network.address for a in event.agent if a.network}
    assert agents == {"110153": s.CLIENT, "110152": s.SERVER}


async def test_a_retried_transaction_of_resources_without_ids_is_recognised_by_full_url(api: Facade) -> None:
    resource = with_mrn(s.patient_read(), "MRN-FULLURL")
    del resource["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"fullUrl": "urn:uuid:9a4c1d52-0d6e-4f3e-8f7e-0b1f9e7a0c11", **entry(resource)}],
    }
    first = Bundle.model_validate((await post(api, "/fhir", bundle)).json())
    before = await stored(api)
    again = Bundle.model_validate((await post(api, "/fhir", bundle)).json())
    assert [e.response.status for e in (*first.entry, *again.entry)] == ["201 Created", "200 OK"]
    assert again.entry[0].response.location == first.entry[0].response.location
    assert await stored(api) == before


async def test_a_byte_order_mark_before_the_json_is_taken(api: Facade) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(with_mrn(s.patient_read("bom"), "MRN-BOM")).encode()
    response = await api.http.post("/fhir/AuditEvent", content=body, headers={**FHIR, **api.auth(Role.EMITTER)})
    assert response.status_code == 201, response.text
