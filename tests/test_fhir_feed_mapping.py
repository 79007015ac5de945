"""The feed's mapping (domain/fhir/feed*.py): a BALP AuditEvent to the
service's events, one per patient; assumptions flagged; refusals naming the
element and never a value. Pure: no database."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from auditsvc.domain.fhir.feed import FEED_ORIGIN, FeedContext, FeedRefusal, map_audit_event

from . import fhir_feed_samples as s

CONTEXT = FeedContext(("epic-adt", "lab-lis"))


def events_of(resource: dict[str, Any], context: FeedContext = CONTEXT) -> list[dict[str, Any]]:
    return [e.json for e in map_audit_event(resource, context).events]


def refusal_of(resource: Any, context: FeedContext = CONTEXT) -> FeedRefusal:
    with pytest.raises(FeedRefusal) as caught:
        map_audit_event(resource, context)
    refusal = caught.value
    assert s.MRN not in str(refusal) and "MRN" not in refusal.message  # no PHI quoted
    return refusal


def test_patient_read_maps_balp_roles_the_way_the_phi_flows() -> None:
    [event] = events_of(s.patient_read())
    # BALP Read: server = 110153 Source (the PHI's source), client = 110152.
    assert event["source"] == {"system_id": s.SERVER, "name": s.SERVER}
    assert event["destination"] == {"system_id": s.CLIENT, "name": s.CLIENT}
    assert event["action"] == "R" and event["event_type"] == "fhir-rest" and event["outcome"] == 0
    assert event["occurred_at"] == "2026-11-24T09:30:00.123000Z"
    assert event["patient"] == {"identifiers": [{"system": s.MRN_SYSTEM, "value": s.MRN}]}
    assert event["data_elements"] == ["Observation"]
    assert event["actor"] == {"id": "dr-feed", "type": "user", "role": "physician", "name": "Dr Test Feed"}
    attributes = event["attributes"]
    assert attributes["origin"] == FEED_ORIGIN and attributes["fhir_id"] == "ex-read-1"
    assert attributes["fhir_type"] == "http://terminology.hl7.org/CodeSystem/audit-event-type|rest"
    assert attributes["fhir_subtype"] == "http://hl7.org/fhir/restful-interaction|read"
    assert attributes["fhir_observer"] == s.SERVER and "assumed" not in attributes


def test_patient_query_swaps_balp_roles_and_keeps_only_the_searched_type() -> None:
    [event] = events_of(s.patient_query())
    # BALP Query: client = 110153, server = 110152, and the PHI flows server -> client.
    assert event["source"]["system_id"] == s.SERVER and event["destination"]["system_id"] == s.CLIENT
    assert event["action"] == "E" and event["event_type"] == "query"
    assert event["data_elements"] == ["Observation"]  # never the query's parameters (they hold PHI)
    assert s.MRN not in json.dumps({k: v for k, v in event.items() if k != "patient"})


@pytest.mark.parametrize("action", ["C", "U", "D"])
def test_patient_create_update_delete_flow_from_the_client(action: str) -> None:
    [event] = events_of(s.patient_change(action, f"ex-{action}"))
    assert event["action"] == action and event["event_type"] == "fhir-rest"
    assert event["source"]["system_id"] == s.SERVER and event["destination"]["system_id"] == "fhir-repo"
    assert event["data_elements"] == ["Condition"]


def test_privacy_disclosure_names_the_recipient_and_purpose() -> None:
    [event] = events_of(s.privacy_disclosure())
    assert event["event_type"] == "disclosure"
    assert event["destination"]["system_id"] == "payer-x" and event["purpose_of_use"] == "HPAYMT"
    assert event["data_elements"] == ["DocumentReference"]
    assert event["attributes"]["fhir_type"] == f"{s.DCM}|110106"


def test_break_glass_is_etreat_whatever_other_purposes_say() -> None:
    resource = s.break_glass()
    resource["purposeOfEvent"] = [{"coding": [{"code": "TREAT"}]}]
    [event] = events_of(resource)
    assert event["event_type"] == "break-glass" and event["purpose_of_use"] == "ETREAT"
    assert event["attributes"]["fhir_purposes"] == "TREAT,ETREAT"


def test_one_event_per_patient_with_distinct_stable_ids() -> None:
    resource = s.with_patients(s.patient_read(), "MRN-FEED-0002", "MRN-FEED-0003")
    first, second = events_of(resource)
    assert first["patient"]["identifiers"][0]["value"] == "MRN-FEED-0002"
    assert second["patient"]["identifiers"][0]["value"] == "MRN-FEED-0003"
    assert first["event_id"] != second["event_id"]
    assert [e["event_id"] for e in events_of(resource)] == [first["event_id"], second["event_id"]]
    assert (first["attributes"]["fhir_patient_index"], second["attributes"]["fhir_patient_count"]) == (0, 2)


def test_the_resend_key_is_the_identifier_else_the_id() -> None:
    by_id = s.patient_read("same-id")
    assert events_of(by_id)[0]["event_id"] == events_of(copy.deepcopy(by_id))[0]["event_id"]
    other_id = s.patient_read("other-id")
    assert events_of(other_id)[0]["event_id"] != events_of(by_id)[0]["event_id"]
    # The same business identifier under another id is the same AuditEvent.
    one, two = s.patient_read("a"), s.patient_read("b")
    for r in (one, two):
        r["identifier"] = {"system": "urn:example:audit", "value": "ae-42"}
    assert events_of(one)[0]["event_id"] == events_of(two)[0]["event_id"]
    # Nothing to recognise a resend by: a new id each time.
    bare = s.patient_read()
    del bare["id"]
    assert events_of(bare)[0]["event_id"] != events_of(bare)[0]["event_id"]


def test_every_identifier_form_is_collected() -> None:
    resource = s.patient_read()
    resource["contained"] = [
        {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:example:empi", "value": "E-77"}]}
    ]
    resource["entity"][0] = {
        "type": s.PATIENT_ENTITY_TYPE,
        "role": s.PATIENT_ROLE,
        "what": {
            "reference": "#p1",
            "identifier": {"system": s.MRN_SYSTEM, "value": s.MRN},
            "extension": [{"url": "urn:x", "valueIdentifier": {"system": "urn:example:ssn", "value": "S-1"}}],
        },
        "extension": [{"url": "urn:y", "valueIdentifier": {"value": "no-system"}}],
    }
    [event] = events_of(resource)
    assert event["patient"]["identifiers"] == [
        {"system": s.MRN_SYSTEM, "value": s.MRN},
        {"system": "urn:example:ssn", "value": "S-1"},
        {"system": "urn:example:empi", "value": "E-77"},
    ]
    assert event["attributes"]["assumed"] == "identifier_without_system"


def test_patient_references_give_logical_ids() -> None:
    resource = s.patient_read()
    resource["entity"][0]["what"] = {"reference": "https://fhir.example.org/r4/Patient/p-9"}
    [event] = events_of(resource)
    assert event["patient"]["identifiers"] == [{"system": "https://fhir.example.org/r4/Patient", "value": "p-9"}]
    resource["entity"][0]["what"] = {"reference": "Patient/p-9"}
    [event] = events_of(resource)
    assert event["patient"]["identifiers"] == [{"system": f"{s.SERVER}/Patient", "value": "p-9"}]
    assert event["attributes"]["assumed"] == "base_from_source"


def test_missing_parts_are_assumed_and_flagged() -> None:
    resource = s.patient_read()
    del resource["action"], resource["outcome"]
    resource["agent"] = [s.user_agent()]  # no system agents at all
    resource["entity"] = [s.patient_entity()]
    [event] = events_of(resource, FeedContext(("epic-adt",)))
    assert event["action"] == "R" and event["outcome"] == 0
    assert event["source"] == {"system_id": "epic-adt"} and event["destination"] == {"system_id": "unknown"}
    assert event["data_elements"] == ["Patient"]
    assert event["attributes"]["assumed"].split(",") == [
        "action_from_subtype",
        "outcome_unknown",
        "source_from_token",
        "destination_unknown",
        "data_elements_unknown",
    ]


def test_r5_outcome_code_and_period_are_read() -> None:
    resource = s.patient_read()
    resource["outcome"] = {"code": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-outcome", "code": "8"}}
    resource["period"] = {"start": "2026-11-24T04:29:59-05:00", "end": "2026-11-24T04:30:30-05:00"}
    [event] = events_of(resource)
    assert event["outcome"] == 8 and event["occurred_at"] == "2026-11-24T09:29:59.000000Z"


def test_without_a_requestor_the_client_system_is_the_actor() -> None:
    resource = s.patient_read()
    del resource["agent"][2]
    [event] = events_of(resource)
    assert event["actor"] == {"id": s.CLIENT, "type": "system", "name": s.CLIENT}
    assert event["attributes"]["assumed"] == "actor_from_client"


def test_unknown_type_codes_are_kept_generic() -> None:
    resource = s.patient_read()
    resource["type"] = {"system": "urn:example:types", "code": "chart-print"}
    [event] = events_of(resource)
    assert event["event_type"] == "fhir-chart-print"
    assert event["attributes"]["assumed"] == "event_type_generic"


def _without(field: str) -> dict[str, Any]:
    resource = s.patient_read()
    del resource[field]
    return resource


def _changed(path: list[Any], value: Any) -> dict[str, Any]:
    resource = s.patient_read()
    target = resource
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return resource


@pytest.mark.parametrize(
    ("resource", "path", "code"),
    [
        ({"resourceType": "Patient", "id": "x"}, "AuditEvent.resourceType", "not-supported"),
        ([1, 2], "AuditEvent", "structure"),
        (_without("recorded"), "AuditEvent.recorded", "required"),
        (_changed(["recorded"], "2026-11-24"), "AuditEvent.recorded", "value"),
        (_changed(["recorded"], "yesterday"), "AuditEvent.recorded", "value"),
        (_changed(["outcome"], "3"), "AuditEvent.outcome", "code-invalid"),
        (_changed(["action"], "X"), "AuditEvent.action", "code-invalid"),
        (_without("type"), "AuditEvent.type", "required"),
        (_changed(["type"], {"system": "urn:x", "code": "not a code!"}), "AuditEvent.type.code", "code-invalid"),
        (_changed(["entity", 0, "what"], {"display": "Jane Test"}), "AuditEvent.entity[0].what.identifier", "required"),
        (
            _changed(["entity", 0, "what"], {"identifier": {"system": s.MRN_SYSTEM}}),
            "AuditEvent.entity[0].what.identifier",
            "required",
        ),
        (_changed(["entity"], [s.data_entity("Observation/1")]), "AuditEvent.entity", "business-rule"),
        (_changed(["entity", 1], "not an object"), "AuditEvent.entity[1]", "structure"),
        (_changed(["agent"], "not a list"), "AuditEvent.agent", "structure"),
    ],
)
def test_unmappable_resources_are_refused_naming_the_element(resource: Any, path: str, code: str) -> None:
    refusal = refusal_of(resource)
    assert (refusal.path, refusal.code) == (path, code)


def test_a_token_of_several_systems_cannot_stand_in_for_a_missing_source() -> None:
    resource = s.patient_read()
    resource["agent"] = [s.user_agent()]
    refusal = refusal_of(resource)
    assert refusal.path == "AuditEvent.agent" and refusal.status == 422


def test_refusals_name_the_element_under_the_given_prefix() -> None:
    resource = s.patient_read()
    del resource["recorded"]
    with pytest.raises(FeedRefusal) as caught:
        map_audit_event(resource, CONTEXT, "Bundle.entry[3].resource")
    assert caught.value.path == "Bundle.entry[3].resource.recorded"


def test_older_balp_application_and_custodian_agents_are_read() -> None:
    resource = s.patient_read()
    resource["agent"] = [
        {"type": {"coding": [{"code": "110150"}]}, "who": {"display": "portal.example.org"}, "requestor": False},
        {"type": {"coding": [{"code": "custodian"}]}, "who": {"identifier": {"value": "epic-adt"}}, "requestor": False},
    ]
    [event] = events_of(resource)  # a read: from the server (custodian) to the client
    assert event["source"]["system_id"] == "epic-adt" and event["destination"]["system_id"] == "portal.example.org"
    resource["action"], resource["subtype"] = "C", [s.interaction("create")]
    [event] = events_of(resource)  # a create: from the client to the server
    assert event["source"]["system_id"] == "portal.example.org" and event["destination"]["system_id"] == "epic-adt"


def test_a_list_of_identifiers_keys_resends_by_the_first() -> None:
    one, two = s.patient_read("x-1"), s.patient_read("x-2")
    one["identifier"] = [{"system": "urn:example:audit", "value": "ae-7"}]
    two["identifier"] = {"system": "urn:example:audit", "value": "ae-7"}
    assert events_of(one)[0]["event_id"] == events_of(two)[0]["event_id"]
    assert events_of(one)[0]["attributes"]["fhir_identifier"] == "urn:example:audit|ae-7"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda r: r.update(id="ex\x00nul"), "AuditEvent.id"),
        (lambda r: r["source"].update(site="a\x00b"), "AuditEvent.source.site"),
        (lambda r: r["agent"][2].update(name="Dr\x00Nul"), "AuditEvent.agent"),
    ],
)
def test_text_that_cannot_be_stored_is_refused_naming_the_element(change: Any, path: str) -> None:
    resource = s.patient_read()
    change(resource)
    refusal = refusal_of(resource)
    assert (refusal.path, refusal.code) == (path, "value") and "NUL" in refusal.message


@pytest.mark.parametrize(
    "resource",
    [
        s.patient_read(),
        s.patient_query(),
        s.patient_change("C", "c"),
        s.patient_change("U", "u"),
        s.patient_change("D", "d"),
        s.privacy_disclosure(),
        s.break_glass(),
    ],
    ids=lambda r: r["id"],
)
def test_what_the_facade_serves_feeds_back_to_the_same_event(resource: dict[str, Any]) -> None:
    from auditsvc.domain.fhir.audit_event import ChainPosition, to_audit_event

    [event] = events_of(resource)
    served = to_audit_event(dict(event), ChainPosition("log", 7, b"\0" * 32, b"\0" * 32), lambda i: i)
    [again] = events_of(served)
    fields = ("occurred_at", "action", "event_type", "patient", "data_elements", "source", "destination")
    assert {f: again[f] for f in fields} == {f: event[f] for f in fields}
    assert (again["actor"], again.get("purpose_of_use"), again["outcome"]) == (
        event["actor"],
        event.get("purpose_of_use"),
        event["outcome"],
    )


@pytest.mark.parametrize(
    ("name", "taken"),
    [("Patient.name", True), ("Observation.value[x]", True), ("PID-5", True), ("OBX-5.1", True), ("Jane Test", False),
     ("Smith", False), ("Smith.john", False)],
)  # fmt: skip
def test_entity_names_are_data_elements_only_when_they_name_one(name: str, taken: bool) -> None:
    resource = s.patient_read()
    resource["entity"][1] = {"type": s.OBJECT_TYPE, "role": s.DOMAIN_RESOURCE, "name": name}
    [event] = events_of(resource)
    assert event["data_elements"] == ([name] if taken else ["Patient"])
