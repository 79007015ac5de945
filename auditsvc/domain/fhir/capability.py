"""``GET /fhir/metadata``: the CapabilityStatement of the facade.

It declares exactly what the routes serve: AuditEvent read, search-type
(ITI-81, GET and POST ``_search``) and create (ITI-20 FHIR feed), and batch
and transaction at system level (the feed's Bundles). It instantiates
BALP's Audit Record Repository capability, whose search parameters and
interactions it serves; the one difference, that only JSON is served (no
XML), is stated in ``implementation.description`` and docs/fhir.md.
"""

from __future__ import annotations

from typing import Any

from ... import __version__

FHIR_VERSION = "4.0.1"
BALP_ARR_CAPABILITY = "https://profiles.ihe.net/ITI/BALP/CapabilityStatement/IHE.BALP.ATNA.AuditRecordRepository"
PUBLISHED = "2026-12-06"

# (name, type, FHIRPath definition in the core spec, what this server does)
SEARCH_PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ("date", "date", "Required. Prefixes eq (default), ne is not supported; ge, gt, le, lt; repeated to bound."),
    ("patient", "reference", "Patient/<id>: the id is taken as the value of a patient identifier (any system)."),
    ("patient.identifier", "token", "system|value, |value or value; any identifier linked to the patient."),
    ("entity.identifier", "token", "As patient.identifier: the patient entity's identifiers."),
    ("entity-type", "token", "audit-entity-type codes 1 (Person) and 2 (System Object)."),
    ("entity-role", "token", "object-role codes 1 (Patient) and 4 (Domain Resource)."),
    ("agent.identifier", "token", "The user agent's id, or a source/destination system's id."),
    ("source.identifier", "token", "The observer: the event's source system id."),
    ("address", "string", "A system id carried as agent.network.address (exact or prefix)."),
    ("type", "token", "AuditEvent.type code (DICOM, audit-event-type)."),
    ("subtype", "token", "AuditEvent.subtype code (the service's event_type, IHE transaction)."),
    ("outcome", "token", "0, 4, 8 or 12."),
    ("_id", "token", "The event_id."),
    ("_lastUpdated", "date", "As date, on the time the service received the event."),
)
_DEFINITIONS = {
    "date": "http://hl7.org/fhir/SearchParameter/AuditEvent-date",
    "patient": "http://hl7.org/fhir/SearchParameter/clinical-patient",
    "entity-type": "http://hl7.org/fhir/SearchParameter/AuditEvent-entity-type",
    "entity-role": "http://hl7.org/fhir/SearchParameter/AuditEvent-entity-role",
    "address": "http://hl7.org/fhir/SearchParameter/AuditEvent-address",
    "type": "http://hl7.org/fhir/SearchParameter/AuditEvent-type",
    "subtype": "http://hl7.org/fhir/SearchParameter/AuditEvent-subtype",
    "outcome": "http://hl7.org/fhir/SearchParameter/AuditEvent-outcome",
    "_id": "http://hl7.org/fhir/SearchParameter/Resource-id",
    "_lastUpdated": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
}


def capability_statement(base_url: str) -> dict[str, Any]:
    """The CapabilityStatement, ``base_url`` being the FHIR base (``.../fhir``)."""
    params = []
    for name, kind, doc in SEARCH_PARAMETERS:
        param: dict[str, Any] = {"name": name, "type": kind, "documentation": doc}
        if name in _DEFINITIONS:
            param["definition"] = _DEFINITIONS[name]
        params.append(param)
    params.append({"name": "_count", "type": "number", "documentation": "Page size, 1..1000 (default 100)."})
    return {
        "resourceType": "CapabilityStatement",
        "id": "auditsvc",
        "url": f"{base_url}/metadata",
        "name": "AuditsvcAuditRecordRepository",
        "title": "auditsvc FHIR AuditEvent facade (IHE RESTful ATNA, BALP)",
        "status": "active",
        "date": PUBLISHED,
        "publisher": "auditsvc",
        "kind": "instance",
        "instantiates": [BALP_ARR_CAPABILITY],
        "software": {"name": "auditsvc", "version": __version__},
        "implementation": {
            "description": "Append-only, hash-chained PHI access audit log. JSON only: XML is not served (406).",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Bearer tokens: privacy_officer or auditor to search and read, emitter to feed.",
                "security": {"description": "Authorization: Bearer <token> (auditsvc API token or OIDC access token)."},
                "resource": [
                    {
                        "type": "AuditEvent",
                        "supportedProfile": [
                            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead",
                            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery",
                            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate",
                            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientUpdate",
                            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientDelete",
                            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source",
                        ],
                        "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}],
                        "versioning": "no-version",
                        "readHistory": False,
                        "updateCreate": False,
                        "conditionalCreate": False,
                        "conditionalUpdate": False,
                        "conditionalDelete": "not-supported",
                        "searchParam": params,
                    }
                ],
                "interaction": [{"code": "batch"}, {"code": "transaction"}],
            }
        ],
    }
