"""Stored events as IHE BALP AuditEvents (domain/fhir/audit_event.py): the
profile, type and subtype for each kind of event, BALP's agent roles with
their client/server directions, the user agent, the observer, the patient
entity carrying every identifier, data entities, purpose, outcome, and the
chain extension that a client can ask a proof with. Every resource parses
with the FHIR R4B models."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from fhir.resources.R4B.auditevent import AuditEvent

from auditsvc.domain.fhir import codes as c
from auditsvc.domain.fhir.audit_event import RESOURCE_TYPE, ChainPosition, to_audit_event
from auditsvc.domain.tokens import Role
from auditsvc.settings import Settings

from .fhir_facade import (
    P1_EMPI,
    P1_MRN,
    Facade,
    emitter_token,
    facade,
    module_settings,
    role_tokens,
    seed_events,
)

CHAIN = ChainPosition("test.auditsvc.local/log", 41, bytes(range(32)), bytes(range(32, 64)))


def opened(identifier: dict[str, Any]) -> dict[str, str]:
    return {"system": identifier["system"], "value": identifier["value"]}


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-11-24T14:30:00.000000Z",
        "action": "R",
        "event_type": "hl7v2-message",
        "patient": {"identifiers": [{"system": P1_MRN[0], "value": P1_MRN[1]}]},
        "data_elements": ["PID", "OBX"],
        "source": {"system_id": "epic-adt", "name": "Epic ADT"},
        "destination": {"system_id": "lab-lis"},
        "actor": {"id": "mirth/ADT-OUT", "type": "system"},
        "outcome": 0,
        "seq": 41,
        "received_at": "2026-11-24T14:30:01.000000Z",
        "emitter": "tok_abc",
    }
    return base | overrides


def mapped(**overrides: Any) -> dict[str, Any]:
    resource = to_audit_event(record(**overrides), CHAIN, opened)
    AuditEvent.model_validate(resource)
    return resource


def agent(resource: dict[str, Any], code: str) -> dict[str, Any]:
    [found] = [a for a in resource["agent"] if any(cd["code"] == code for cd in a["type"]["coding"])]
    return found


def system_of(agent_: dict[str, Any]) -> str:
    return str(agent_["who"]["identifier"]["value"])


@pytest.mark.parametrize(
    ("overrides", "profile", "type_code", "subtype"),
    [
        ({"action": "R"}, c.PATIENT_READ, "rest", "read"),
        ({"action": "C", "event_type": "fhir-rest"}, c.PATIENT_CREATE, "rest", "create"),
        ({"action": "U", "event_type": "fhir-rest"}, c.PATIENT_UPDATE, "rest", "update"),
        ({"action": "D", "event_type": "fhir-rest"}, c.PATIENT_DELETE, "rest", "delete"),
        ({"action": "E", "event_type": "query"}, c.PATIENT_QUERY, "rest", "search-type"),
        ({"action": "R", "event_type": "disclosure"}, c.PRIVACY_DISCLOSURE, "110106", "disclose"),
        ({"action": "R", "event_type": "export"}, c.PRIVACY_DISCLOSURE, "110106", "disclose"),
    ],
)
def test_each_kind_of_event_gets_its_balp_profile_type_and_subtype(overrides, profile, type_code, subtype) -> None:
    resource = mapped(**overrides)
    assert resource["meta"]["profile"] == [profile]
    assert resource["type"]["code"] == type_code
    assert resource["subtype"][0]["code"] == subtype
    own = {"system": c.EVENT_TYPE_SYSTEM, "code": overrides.get("event_type", "hl7v2-message")}
    assert own in resource["subtype"]
    assert resource["action"] == overrides["action"]


def test_110153_is_the_source_of_the_phi_except_in_a_query_where_it_is_the_client() -> None:
    message = mapped()  # an HL7 v2 message
    assert system_of(agent(message, "110153")) == "epic-adt" and system_of(agent(message, "110152")) == "lab-lis"
    # A FHIR read (BALP Read): the server, where the PHI came from, is 110153; the client 110152.
    read = mapped(event_type="fhir-rest", source={"system_id": "epic-fhir"}, destination={"system_id": "app"})
    assert system_of(agent(read, "110153")) == "epic-fhir" and system_of(agent(read, "110152")) == "app"
    # A query (BALP Query): the client that asked (and received) is 110153, the server 110152.
    query = mapped(event_type="query", action="E", source={"system_id": "mpi"}, destination={"system_id": "app"})
    assert system_of(agent(query, "110153")) == "app" and system_of(agent(query, "110152")) == "mpi"
    for resource in (message, read, query):
        for a in resource["agent"][1:]:
            assert a["requestor"] is False and a["network"] == {"address": system_of(a), "type": "1"}


def test_a_disclosure_names_its_recipient() -> None:
    resource = mapped(event_type="disclosure", destination={"system_id": "state-registry"}, purpose_of_use="PUBHLTH")
    recipient = agent(resource, "IRCP")
    assert system_of(recipient) == "state-registry"
    assert {"system": c.DCM, "code": "110152", "display": "Destination Role ID"} in recipient["type"]["coding"]
    assert system_of(agent(resource, "110153")) == "epic-adt"
    assert resource["purposeOfEvent"] == [{"coding": [{"system": c.PURPOSE_OF_USE, "code": "PUBHLTH"}]}]


@pytest.mark.parametrize("overrides", [{"purpose_of_use": "ETREAT"}, {"event_type": "break-glass"}])
def test_break_glass_is_110127_and_etreat(overrides) -> None:
    resource = mapped(actor={"id": "nurse-7", "type": "user", "name": "N. Seven"}, **overrides)
    assert c.EMERGENCY_OVERRIDE in resource["subtype"]
    etreat = [{"coding": [{"system": c.PURPOSE_OF_USE, "code": "ETREAT"}]}]
    assert resource["purposeOfEvent"] == etreat
    user = agent(resource, "humanuser")
    assert user["requestor"] is True and user["purposeOfUse"] == etreat
    assert user["who"] == {"identifier": {"system": c.ACTOR_ID_SYSTEM, "value": "nurse-7"}, "display": "N. Seven"}


def test_the_user_agent_observer_outcome_and_period() -> None:
    resource = mapped(outcome=8, actor={"id": "svc-1", "type": "system", "role": "interface"})
    user = resource["agent"][0]
    assert user["requestor"] is True and user["type"]["coding"] == [c.DATA_PROCESSOR]
    assert user["role"] == [{"text": "interface"}]
    assert resource["outcome"] == "8"
    assert resource["source"]["observer"] == {
        "identifier": {"system": c.SYSTEM_ID_SYSTEM, "value": "epic-adt"},
        "display": "Epic ADT",
    }
    assert resource["period"] == {"start": "2026-11-24T14:30:00.000000Z", "end": "2026-11-24T14:30:00.000000Z"}
    assert resource["recorded"] == "2026-11-24T14:30:01.000000Z"


def test_the_patient_entity_carries_every_identifier_and_data_entities_follow() -> None:
    identifiers = [{"system": s, "value": v} for s, v in (P1_MRN, P1_EMPI)]
    resource = mapped(patient={"identifiers": identifiers}, data_elements=["Observation", "Patient.name"])
    patient, *data = resource["entity"]
    assert patient["type"] == c.PERSON and patient["role"] == c.PATIENT_ROLE
    assert patient["what"]["identifier"] == identifiers[0]
    [contained] = resource["contained"]
    assert patient["what"]["reference"] == f"#{contained['id']}"
    assert contained["resourceType"] == "Patient" and contained["identifier"] == identifiers
    assert [(e["name"], e["type"]["code"], e["role"]["code"]) for e in data] == [
        ("Observation", "2", "4"),
        ("Patient.name", "2", "4"),
    ]
    assert data[0]["what"] == {"type": "Observation", "display": "Observation"}
    assert data[1]["what"] == {"display": "Patient.name"}


def test_the_chain_extension_names_log_seq_and_hashes() -> None:
    [ext] = mapped()["extension"]
    assert ext["url"] == c.CHAIN_RECORD_EXTENSION
    parts = {e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in ext["extension"]}
    assert parts == {
        "log": CHAIN.log,
        "seq": 41,
        "leafHash": CHAIN.leaf_hash.hex(),
        "chainHash": CHAIN.chain_hash.hex(),
        "receivedAt": "2026-11-24T14:30:01.000000Z",
        "emitter": "tok_abc",
    }


# --- against the service: the same record the chain holds ------------------------------


@pytest.fixture(scope="module")
def world_settings(
    server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[Role, str], str]]:
    for settings in module_settings(server_url, template_db, tmp_path_factory.mktemp("fhir-mapping")):
        yield settings, role_tokens(settings), emitter_token(settings)


@pytest_asyncio.fixture(scope="module")
async def api(world_settings) -> AsyncIterator[tuple[Facade, dict[str, dict[str, Any]]]]:
    settings, tokens, emitter = world_settings
    events = {k: v for k, v in seed_events().items() if k.startswith("e")}
    async with facade(settings, tokens) as running:
        response = await running.http.post(
            "/v1/events", json={"events": list(events.values())}, headers={"Authorization": f"Bearer {emitter}"}
        )
        assert response.status_code == 200, response.text
        yield running, events


@pytest.mark.db
async def test_a_read_resource_carries_the_stored_record_s_seq_and_hashes(api) -> None:
    facade_, events = api
    for name in ("e1", "e2", "e3", "e4", "e5", "e6"):
        event_id = events[name]["event_id"]
        fhir = await facade_.http.get(f"/fhir/AuditEvent/{event_id}", headers=facade_.auth(Role.AUDITOR))
        stored = await facade_.http.get(f"/v1/events/{event_id}", headers=facade_.auth(Role.AUDITOR))
        assert fhir.status_code == 200 and stored.status_code == 200
        resource = AuditEvent.model_validate(fhir.json())
        parts = {e.url: e for e in resource.extension[0].extension}
        assert int(parts["seq"].valueDecimal) == stored.json()["seq"]
        assert parts["leafHash"].valueString == stored.json()["leaf_hash"]
        assert parts["chainHash"].valueString == stored.json()["chain_hash"]
        # An auditor sees the identifier sealed, exactly as the stored record holds it.
        sealed = [i["value_enc"] for i in stored.json()["record"]["patient"]["identifiers"]]
        assert [i.value for i in resource.contained[0].identifier] == sealed
    proof = await facade_.http.get(
        "/v1/proofs/inclusion",
        params={"seq": int(parts["seq"].valueDecimal), "tree_size": 6},
        headers=facade_.auth(Role.AUDITOR),
    )
    assert proof.status_code == 200


@pytest.mark.db
async def test_a_privacy_officer_reads_identifiers_opened(api) -> None:
    facade_, events = api
    response = await facade_.http.get(
        f"/fhir/AuditEvent/{events['e2']['event_id']}", headers=facade_.auth(Role.PRIVACY_OFFICER)
    )
    contained = response.json()["contained"][0]["identifier"]
    assert contained == [{"system": s, "value": v} for s, v in (P1_MRN, P1_EMPI)]


@pytest.mark.db
@pytest.mark.parametrize("name", ["e2", "e3", "e5", "e6"])
async def test_an_audit_event_fed_back_through_iti_20_is_the_same_access(api, world_settings, name: str) -> None:
    """Search's AuditEvents and the feed's reading of them agree: a read, a
    disclosure, a break-glass access and a query, fed back, give the same facts."""
    facade_, events = api
    emitter = world_settings[2]
    original = events[name]
    read = await facade_.http.get(
        f"/fhir/AuditEvent/{original['event_id']}", headers=facade_.auth(Role.PRIVACY_OFFICER)
    )
    resource = read.json()
    for element in ("id", "meta", "extension"):
        resource.pop(element)
    fed = await facade_.http.post(
        "/fhir/AuditEvent",
        json=resource,
        headers={"Authorization": f"Bearer {emitter}", "Content-Type": "application/fhir+json"},
    )
    assert fed.status_code == 201, fed.text
    new_id = fed.headers["location"].rstrip("/").split("/")[-1]
    stored = await facade_.http.get(f"/v1/events/{new_id}", headers=facade_.auth(Role.AUDITOR))
    record = stored.json()["record"]
    for field in ("action", "outcome"):
        assert record[field] == original.get(field, {"outcome": 0}.get(field)), field
    assert record["event_type"] == original["event_type"]
    # The feed reads resource types from the entities (what.type), not HL7 v2 segment names.
    assert {d for d in original["data_elements"] if RESOURCE_TYPE.match(d)} <= set(record["data_elements"])
    assert record["source"]["system_id"] == original["source"]["system_id"]
    assert record["destination"]["system_id"] == original["destination"]["system_id"]
    assert record["actor"]["id"] == original["actor"]["id"]
    assert record.get("purpose_of_use") == original.get("purpose_of_use")
    assert [i["system"] for i in record["patient"]["identifiers"]] == [
        i["system"] for i in original["patient"]["identifiers"]
    ]
