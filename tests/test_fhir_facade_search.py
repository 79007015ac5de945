"""ITI-81 search and read on the FHIR facade: every parameter, its
modifiers, token OR, date precision, paging with one snapshot, each 400,
roles, and the record of every search and read in the chain. Every answer
parses with the FHIR R4B models."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import pytest_asyncio
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .conftest import event
from .fhir_facade import (
    MRN,
    P1_EMPI,
    P1_MRN,
    P2_MRN,
    P4_EVENTS,
    P4_MRN,
    Facade,
    bundle_ids,
    emitter_token,
    facade,
    link,
    module_settings,
    role_tokens,
    seed_events,
)

pytestmark = pytest.mark.db

DCM = "http://dicom.nema.org/resources/ontology/DCM"
ALL_TIME = "lt2026-12-02"  # every seeded event; the service's own (recorded now) are later
EVER = "ge2000"


@pytest.fixture(scope="module")
def world_settings(
    server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[Role, str], str]]:
    for settings in module_settings(server_url, template_db, tmp_path_factory.mktemp("fhir-search")):
        settings = settings.model_copy(update={"fhir_patient_system": MRN})
        yield settings, role_tokens(settings), emitter_token(settings)


@pytest_asyncio.fixture(scope="module")
async def api(world_settings) -> AsyncIterator[tuple[Facade, dict[str, dict[str, Any]]]]:
    settings, tokens, emitter = world_settings
    events = seed_events()
    async with facade(settings, tokens) as running:
        response = await running.http.post(
            "/v1/events", json={"events": list(events.values())}, headers={"Authorization": f"Bearer {emitter}"}
        )
        assert response.status_code == 200, response.text
        yield running, events


async def search(api, params: list[tuple[str, str]] | dict[str, str], role: Role = Role.PRIVACY_OFFICER) -> dict:
    facade_, _ = api
    response = await facade_.http.get("/fhir/AuditEvent", params=params, headers=facade_.auth(role))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    Bundle.model_validate(response.json())
    return response.json()


def ids_of(api, *names: str) -> list[str]:
    _, events = api
    return [events[n]["event_id"] for n in names]


async def refused(api, params: list[tuple[str, str]], status: int = 400) -> OperationOutcome:
    facade_, _ = api
    response = await facade_.http.get("/fhir/AuditEvent", params=params, headers=facade_.auth(Role.PRIVACY_OFFICER))
    assert response.status_code == status, response.text
    assert "MRN-FHIR" not in response.text
    return OperationOutcome.model_validate(response.json())


# --- patient parameters ---------------------------------------------------------------


async def test_a_patient_search_finds_events_under_every_linked_identifier(api) -> None:
    bundle = await search(api, [("patient.identifier", "|".join(P1_MRN)), ("date", ALL_TIME)])
    assert bundle["type"] == "searchset"
    assert bundle_ids(bundle) == ids_of(api, "e1", "e2", "e3")  # e3 names only the linked EMPI id
    assert link(bundle, "next") is None
    for entry in bundle["entry"]:
        assert entry["fullUrl"].endswith(f"/fhir/AuditEvent/{entry['resource']['id']}")
        assert entry["search"]["mode"] == "match"


async def test_token_or_and_entity_identifier(api) -> None:
    either = f"{'|'.join(P2_MRN)},{'|'.join(P1_EMPI)}"
    bundle = await search(api, [("entity.identifier", either), ("date", "ge2026-11-25"), ("date", ALL_TIME)])
    assert bundle_ids(bundle) == ids_of(api, "e3", "e4", "e5")


async def test_patient_reference_resolves_through_the_configured_system(api) -> None:
    bundle = await search(api, [("patient", f"Patient/{P2_MRN[1]}"), ("date", ALL_TIME)])
    assert bundle_ids(bundle) == ids_of(api, "e4", "e5")


async def test_repeated_patient_parameters_must_all_hold(api) -> None:
    same = await search(
        api, [("patient.identifier", "|".join(P1_MRN)), ("patient.identifier", "|".join(P1_EMPI)), ("date", ALL_TIME)]
    )
    assert bundle_ids(same) == ids_of(api, "e1", "e2", "e3")
    other = await search(
        api, [("patient.identifier", "|".join(P1_MRN)), ("patient.identifier", "|".join(P2_MRN)), ("date", ALL_TIME)]
    )
    assert bundle_ids(other) == []


async def test_a_search_that_matches_nothing_is_an_empty_bundle(api) -> None:
    bundle = await search(api, [("patient.identifier", f"{MRN}|MRN-NOBODY"), ("date", ALL_TIME)])
    assert bundle["type"] == "searchset" and bundle["entry"] == []
    # |value: an identifier without a system, which no stored identifier is
    assert bundle_ids(await search(api, [("patient.identifier", f"|{P1_MRN[1]}"), ("date", ALL_TIME)])) == []


# --- dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (["2026-11-24"], ["e1", "e2"]),
        (["eq2026-11-24"], ["e1", "e2"]),
        (["2026-11-24T10:00"], ["e2"]),  # minute precision: 10:00:00 to 10:01:00
        (["2026-11-24T10:00:30"], ["e2"]),
        (["2026-11-24T10:00:30.25"], ["e2"]),
        (["2026-11-24T10:00:31"], []),
        (["2026-11-24T05:00-05:00"], ["e2"]),
        (["2026-11-24T04:30-05:00"], ["e1"]),
        (["ge2026-11-25", "lt2026-11-26"], ["e3", "e4"]),
        (["gt2026-11-25", "le2026-11-26"], []),  # e5 is 2026-11-27T04:30Z
        (["sa2026-11-26", "eb2026-11-28"], ["e5"]),
        (["2026-12"], ["e6"]),
        (["lt2026"], []),
    ],
)
async def test_dates_stand_for_the_range_their_precision_implies(api, dates, expected) -> None:
    _, events = api
    named = {e["event_id"] for k, e in events.items() if k.startswith("e")}
    bundle = await search(api, [("date", d) for d in dates] + [("_count", "1000")])
    assert [i for i in bundle_ids(bundle) if i in named] == ids_of(api, *expected)


# --- agents, observer, address --------------------------------------------------------


async def test_source_identifier_is_the_observer(api) -> None:
    bundle = await search(api, [("source.identifier", "urn:auditsvc:system|epic-fhir"), ("date", ALL_TIME)])
    assert bundle_ids(bundle) == ids_of(api, "e2", "e5")
    assert bundle_ids(await search(api, [("source.identifier", "urn:other|epic-fhir"), ("date", ALL_TIME)])) == []


async def test_agent_identifier_finds_users_and_systems(api) -> None:
    user = await search(api, [("agent.identifier", "urn:auditsvc:actor|dr-1"), ("date", ALL_TIME)])
    assert bundle_ids(user) == ids_of(api, "e2")
    system = await search(api, [("agent.identifier", "ed-app,state-registry"), ("date", ALL_TIME)])
    assert bundle_ids(system) == ids_of(api, "e3", "e5")


async def test_address_is_a_prefix_unless_exact(api) -> None:
    prefix = await search(api, [("address", "ED-"), ("date", ALL_TIME)])
    assert bundle_ids(prefix) == ids_of(api, "e5")
    assert bundle_ids(await search(api, [("address:exact", "ed-"), ("date", ALL_TIME)])) == []
    exact = await search(api, [("address:exact", "state-registry"), ("date", ALL_TIME)])
    assert bundle_ids(exact) == ids_of(api, "e3")


# --- codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("type", f"{DCM}|110106")], ["e3"]),
        ([("subtype", "http://hl7.org/fhir/restful-interaction|create")], ["e4"]),
        ([("subtype", f"{DCM}|110127")], ["e5"]),
        ([("subtype", "search-type")], ["e6"]),
        ([("outcome", "4")], ["e4"]),
        ([("outcome:not", "0")], ["e4"]),
        ([("type:not", "http://terminology.hl7.org/CodeSystem/audit-event-type|rest")], ["e3"]),
        ([("entity-role", "1"), ("entity-type", "2"), ("_id", "EVENT:e2")], ["e2"]),
    ],
)
async def test_code_parameters_and_not(api, params, expected) -> None:
    _, events = api
    named = {e["event_id"] for k, e in events.items() if k.startswith("e")}
    params = [(n, events[v[6:]]["event_id"] if v.startswith("EVENT:") else v) for n, v in params]
    bundle = await search(api, [*params, ("date", "lt2026-12-02"), ("_count", "1000")])
    assert [i for i in bundle_ids(bundle) if i in named] == ids_of(api, *expected)


async def test_id_and_last_updated(api) -> None:
    first, second = ids_of(api, "e1", "e4")
    assert bundle_ids(await search(api, [("_id", f"{first},{second}"), ("date", ALL_TIME)])) == [first, second]
    assert bundle_ids(await search(api, [("_id", first), ("_lastUpdated", "lt2001"), ("date", ALL_TIME)])) == []
    assert bundle_ids(await search(api, [("_id", first), ("_lastUpdated", "ge2001"), ("date", ALL_TIME)])) == [first]


# --- paging ---------------------------------------------------------------------------


async def follow(api, url: str) -> dict:
    facade_, _ = api
    response = await facade_.http.get(url, headers=facade_.auth(Role.PRIVACY_OFFICER))
    assert response.status_code == 200, response.text
    Bundle.model_validate(response.json())
    return response.json()


async def test_pages_follow_next_links_that_carry_no_phi_and_hold_one_snapshot(api, world_settings) -> None:
    facade_, events = api
    p4 = [events[f"p4-{i}"]["event_id"] for i in range(P4_EVENTS)]
    bundle = await search(api, [("patient.identifier", "|".join(P4_MRN)), ("date", "2026-11-27"), ("_count", "5")])
    pages = [bundle_ids(bundle)]
    next_url = link(bundle, "next")
    # An event appended while paging (inside the period) is not in this search's snapshot.
    late = event([P4_MRN], occurred_at="2026-11-27T10:02:30Z", source="lab-lis")
    emitter = world_settings[2]
    response = await facade_.http.post(
        "/v1/events", json={"events": [late]}, headers={"Authorization": f"Bearer {emitter}"}
    )
    assert response.status_code == 200
    while next_url:
        for url in (next_url, link(bundle, "self")):
            assert "MRN-FHIR" not in url and set(dict(parse_qsl(urlsplit(url).query))) == {"_page"}
        bundle = await follow(api, next_url)
        pages.append(bundle_ids(bundle))
        next_url = link(bundle, "next")
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == p4
    again = await search(api, [("patient.identifier", "|".join(P4_MRN)), ("date", "2026-11-27"), ("_count", "1000")])
    assert late["event_id"] in bundle_ids(again)


async def test_a_self_link_answers_the_same_page(api) -> None:
    bundle = await search(api, [("source.identifier", "lab-lis"), ("date", "2026-11-27"), ("_count", "4")])
    again = await follow(api, link(bundle, "self"))
    assert bundle_ids(again) == bundle_ids(bundle)


async def test_post_search_takes_the_parameters_in_a_form_body(api) -> None:
    facade_, _ = api
    form = {"patient.identifier": "|".join(P1_MRN), "date": ALL_TIME}
    response = await facade_.http.post(
        "/fhir/AuditEvent/_search", data=form, headers=facade_.auth(Role.PRIVACY_OFFICER)
    )
    assert response.status_code == 200, response.text
    assert bundle_ids(Bundle.model_validate(response.json()).model_dump()) == ids_of(api, "e1", "e2", "e3")
    wrong = await facade_.http.post("/fhir/AuditEvent/_search", json=form, headers=facade_.auth(Role.PRIVACY_OFFICER))
    assert wrong.status_code == 415
    assert OperationOutcome.model_validate(wrong.json()).issue[0].code == "not-supported"


# --- 400s -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expression", "code"),
    [
        ([("patient.identifier", "|".join(P1_MRN))], "date", "required"),
        ([("date", ALL_TIME), ("patient.name", "x")], "patient.name", "not-supported"),
        ([("date", "2026-13-01")], "date", "invalid"),
        ([("date", "yesterday")], "date", "invalid"),
        ([("date", "ne2026-11-24")], "date", "not-supported"),
        ([("date", ALL_TIME), ("patient.identifier", P1_MRN[1])], "patient.identifier", "not-supported"),
        ([("date", ALL_TIME), ("patient.identifier:text", "|".join(P1_MRN))], "patient.identifier", "not-supported"),
        ([("date", ALL_TIME), ("_count", "0")], "_count", "invalid"),
        ([("date", ALL_TIME), ("_id", "MRN-FHIR-0001")], "_id", "invalid"),
        ([("date", ALL_TIME), ("type:above", "x")], "type", "not-supported"),
        ([("date", ALL_TIME), ("patient", "Practitioner/MRN-FHIR-0001")], "patient", "invalid"),
        ([("_page", "aes256gcm:k1:AAAA")], "_page", "invalid"),
        ([("_page", "x"), ("date", ALL_TIME)], "_page", "invalid"),
    ],
)
async def test_malformed_searches_are_400_naming_the_parameter_never_its_value(api, params, expression, code) -> None:
    outcome = await refused(api, params)
    [issue] = outcome.issue
    assert issue.expression == [expression] and issue.code == code


async def test_patient_without_a_configured_system_is_not_supported(api) -> None:
    facade_, _ = api
    audit = facade_.app.state.audit
    saved = audit.settings
    audit.settings = saved.model_copy(update={"fhir_patient_system": None})
    try:
        outcome = await refused(api, [("patient", "Patient/abc"), ("date", ALL_TIME)])
    finally:
        audit.settings = saved
    assert outcome.issue[0].code == "not-supported" and "AUDITSVC_FHIR_PATIENT_SYSTEM" in outcome.issue[0].diagnostics


# --- roles ----------------------------------------------------------------------------


async def test_auditors_search_without_seeing_or_asking_for_patient_identifiers(api) -> None:
    facade_, _ = api
    bundle = await search(api, [("source.identifier", "epic-fhir"), ("date", ALL_TIME)], role=Role.AUDITOR)
    for entry in bundle["entry"]:
        for identifier in entry["resource"]["contained"][0]["identifier"]:
            assert identifier["value"].startswith("aes256gcm:")
    assert "MRN-FHIR" not in str(bundle)
    response = await facade_.http.get(
        "/fhir/AuditEvent",
        params=[("patient.identifier", "|".join(P1_MRN)), ("date", ALL_TIME)],
        headers=facade_.auth(Role.AUDITOR),
    )
    assert response.status_code == 403
    [issue] = OperationOutcome.model_validate(response.json()).issue
    assert issue.code == "forbidden" and issue.expression == ["patient.identifier"]


# --- read -----------------------------------------------------------------------------


async def test_read_one_and_404s(api) -> None:
    facade_, events = api
    target = events["e2"]["event_id"]
    response = await facade_.http.get(f"/fhir/AuditEvent/{target}", headers=facade_.auth(Role.PRIVACY_OFFICER))
    assert response.status_code == 200
    resource = AuditEvent.model_validate(response.json())
    assert resource.id == target
    for missing in ("0190d1f6-0000-7000-8000-000000000000", "not-a-uuid"):
        response = await facade_.http.get(f"/fhir/AuditEvent/{missing}", headers=facade_.auth(Role.AUDITOR))
        assert response.status_code == 404
        assert OperationOutcome.model_validate(response.json()).issue[0].code == "not-found"


# --- every search and read is in the chain --------------------------------------------


async def test_searches_and_reads_are_recorded_as_audit_log_used(api) -> None:
    facade_, events = api
    await search(api, [("patient.identifier", "|".join(P1_MRN)), ("date", "2026-11-24")])
    target = events["e1"]["event_id"]
    await facade_.http.get(f"/fhir/AuditEvent/{target}", headers=facade_.auth(Role.AUDITOR))
    used = await search(
        api,
        [
            ("type", f"{DCM}|110101"),
            ("subtype", "urn:ihe:event-type-code|ITI-81"),
            ("date", EVER),
            ("_count", "1000"),
        ],
    )
    kinds = []
    for entry in used["entry"]:
        resource = entry["resource"]
        assert resource["type"]["code"] == "110101"
        patient = resource["entity"][0]
        query = [e for e in resource["entity"] if e["role"]["code"] == "24"]
        if query:
            text = base64.b64decode(query[0]["query"]).decode()
            assert "MRN-FHIR" not in text  # the patient parameter's value is sealed
            params = dict(parse_qsl(text))
            if params.get("date") == "2026-11-24" and "patient.identifier" in params:
                assert params["patient.identifier"].startswith("aes256gcm:")
                assert patient["what"]["identifier"] == {"system": P1_MRN[0], "value": P1_MRN[1]}
                kinds.append("search")
        elif any(i["value"] == P1_MRN[1] for i in resource["contained"][0]["identifier"]):
            kinds.append("read")  # the read event's subject: the patient of the AuditEvent read
    assert "search" in kinds and "read" in kinds
    # The patient's own report shows the reads of their record.
    response = await facade_.http.post(
        "/v1/reports/patient-access",
        json={"identifier": {"system": P1_MRN[0], "value": P1_MRN[1]}, "limit": 1000},
        headers=facade_.auth(Role.PRIVACY_OFFICER),
    )
    queries = [e.get("attributes", {}).get("query") for e in response.json()["events"]]
    assert "fhir-search" in queries and "fhir-read" in queries


async def test_json_only_406_for_xml(api) -> None:
    facade_, _ = api
    response = await facade_.http.get(
        "/fhir/AuditEvent", params={"date": ALL_TIME, "_format": "xml"}, headers=facade_.auth(Role.AUDITOR)
    )
    assert response.status_code == 406


async def test_an_oversized_search_body_is_413_as_an_operation_outcome(api) -> None:
    facade_, _ = api
    body = "date=ge2000&" + "_id=" + "0" * 20_000
    response = await facade_.http.post(
        "/fhir/AuditEvent/_search",
        content=body,
        headers={**facade_.auth(Role.PRIVACY_OFFICER), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert OperationOutcome.model_validate(response.json()).issue[0].code == "too-costly"
