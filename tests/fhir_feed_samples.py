"""AuditEvents shaped after the IHE BALP profiles and their published
examples, for the feed tests (tests/test_fhir_feed*.py). Synthetic patients
only. Each builder returns a fresh dict the test may change."""

from __future__ import annotations

import base64
import copy
from typing import Any

DCM = "http://dicom.nema.org/resources/ontology/DCM"
REST = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "Restful Operation",
}
PATIENT_ENTITY_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"}
PATIENT_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}
OBJECT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"}
DOMAIN_RESOURCE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4"}
QUERY_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24"}
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.999.1"
MRN = "MRN-FEED-0001"  # synthetic
SERVER = "epic-adt"  # the FHIR server: one of the test emitter's systems
CLIENT = "portal-app"


def interaction(code: str) -> dict[str, str]:
    return {"system": "http://hl7.org/fhir/restful-interaction", "code": code}


def role_agent(code: str, system_id: str, address: str) -> dict[str, Any]:
    display = {"110153": "Source Role ID", "110152": "Destination Role ID"}[code]
    return {
        "type": {"coding": [{"system": DCM, "code": code, "display": display}]},
        "who": {"identifier": {"system": "urn:example:systems", "value": system_id}, "display": system_id},
        "requestor": False,
        "network": {"address": address, "type": "1"},
    }


def user_agent(user_id: str = "dr-feed", purpose: str | None = None) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
        "who": {"identifier": {"system": "urn:example:users", "value": user_id}},
        "name": "Dr Test Feed",
        "requestor": True,
        "role": [{"coding": [{"system": "urn:example:roles", "code": "physician"}]}],
    }
    if purpose is not None:
        agent["purposeOfUse"] = [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": purpose}]}
        ]
    return agent


def patient_entity(value: str = MRN, system: str = MRN_SYSTEM) -> dict[str, Any]:
    return {
        "type": PATIENT_ENTITY_TYPE,
        "role": PATIENT_ROLE,
        "what": {"identifier": {"system": system, "value": value}},
    }


def data_entity(reference: str) -> dict[str, Any]:
    return {"type": OBJECT_TYPE, "role": DOMAIN_RESOURCE, "what": {"reference": reference}}


def _base(resource_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "id": resource_id,
        "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"}]},
        "recorded": "2026-11-24T09:30:00.123+00:00",
        "outcome": "0",
        "source": {
            "site": "server.example.org",
            "observer": {"display": SERVER},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
        **fields,
    }


def patient_read(resource_id: str = "ex-read-1") -> dict[str, Any]:
    """BALP PatientRead: the client is 110152 Destination, the server 110153 Source."""
    return _base(
        resource_id,
        type=REST,
        subtype=[interaction("read")],
        action="R",
        agent=[
            role_agent("110152", CLIENT, "2001:db8::7334"),
            role_agent("110153", SERVER, "https://fhir.example.org/r4"),
            user_agent(),
        ],
        entity=[patient_entity(), data_entity("Observation/obs-1")],
    )


def patient_query(resource_id: str = "ex-query-1") -> dict[str, Any]:
    """BALP PatientQuery: the client is 110153 Source, the server 110152 Destination, action E."""
    raw = base64.b64encode(b"GET /r4/Observation?patient.identifier=urn:oid:x|MRN-FEED-0001").decode()
    return _base(
        resource_id,
        type=REST,
        subtype=[interaction("search-type")],
        action="E",
        agent=[
            role_agent("110153", CLIENT, "2001:db8::7334"),
            role_agent("110152", SERVER, "https://fhir.example.org/r4"),
            user_agent(),
        ],
        entity=[
            patient_entity(),
            {"type": OBJECT_TYPE, "role": QUERY_ROLE, "query": raw},
        ],
    )


def patient_change(action: str, resource_id: str) -> dict[str, Any]:
    """BALP PatientCreate/Update/Delete: the client (110153) sends to the server (110152)."""
    code = {"C": "create", "U": "update", "D": "delete"}[action]
    return _base(
        resource_id,
        type=REST,
        subtype=[interaction(code)],
        action=action,
        agent=[
            role_agent("110153", SERVER, "https://ehr.example.org"),
            role_agent("110152", "fhir-repo", "https://fhir.example.org/r4"),
            user_agent(),
        ],
        entity=[patient_entity(), data_entity("Condition/cond-1")],
    )


def privacy_disclosure(resource_id: str = "ex-disclosure-1") -> dict[str, Any]:
    """BALP PrivacyDisclosure at the source: DCM 110106 Export, subtype disclose."""
    return _base(
        resource_id,
        type={"system": DCM, "code": "110106", "display": "Export"},
        subtype=[
            {"system": "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "code": "disclose"},
            interaction("read"),
        ],
        action="R",
        purposeOfEvent=[
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HPAYMT"}]}
        ],
        agent=[
            role_agent("110153", SERVER, "ehr.example.org"),
            role_agent("110152", "payer-x", "https://payer.example.com/fhir"),
            user_agent("clerk-7"),
        ],
        entity=[
            patient_entity(),
            {
                "type": OBJECT_TYPE,
                "role": {**DOMAIN_RESOURCE, "code": "3"},
                "what": {"reference": "DocumentReference/d-1"},
            },
        ],
    )


def break_glass(resource_id: str = "ex-btg-1") -> dict[str, Any]:
    """An emergency-override read: DCM 110127 and ETREAT on the user."""
    resource = patient_read(resource_id)
    resource["type"] = {"system": DCM, "code": "110127", "display": "Emergency Override Started"}
    resource["subtype"] = []
    resource["agent"][2] = user_agent(purpose="ETREAT")
    return resource


def with_patients(resource: dict[str, Any], *values: str) -> dict[str, Any]:
    """``resource`` with one patient entity per value (BALP expects one; more are taken)."""
    out = copy.deepcopy(resource)
    others = [e for e in out["entity"] if e.get("role") != PATIENT_ROLE]
    out["entity"] = [patient_entity(v) for v in values] + others
    return out
