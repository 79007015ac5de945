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
from .codes import BALP_PROFILES

FHIR_VERSION = "4.0.1"
BALP_ARR_CAPABILITY = "https://profiles.ihe.net/ITI/BALP/CapabilityStatement/IHE.BALP.ATNA.AuditRecordRepository"
PUBLISHED = "2026-12-06"

# (name, type, FHIRPath definition in the core spec, what this server does)
SEARCH_PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ("date", "date", "Required. Prefixes eq (default), ge, gt, le, lt, sa, eb (not ne, ap); repeat to bound."),
    ("patient", "reference", "Patient/<id>: identifier (AUDITSVC_FHIR_PATIENT_SYSTEM, id); privacy_officer only."),
    ("patient.identifier", "token", "system|value (system required); every linked identifier; privacy_officer only."),
    ("entity.identifier", "token", "As patient.identifier: the patient entity's identifiers."),
    ("entity-type", "token", "audit-entity-type: 1 Person (the patient), 2 System Object (data, query); :not."),
    ("entity-role", "token", "object-role: 1 Patient, 4 Domain Resource, 24 Query; :not."),
    ("agent.identifier", "token", "urn:auditsvc:actor|<actor id> or urn:auditsvc:system|<system id>, or a bare id."),
    ("source.identifier", "token", "The observer: urn:auditsvc:system|<source system id>, or a bare id."),
    ("address", "string", "A source or destination system id: case-insensitive prefix, or :exact."),
    ("type", "token", "AuditEvent.type (rest, DCM 110106 Export, DCM 110101 Audit Log Used); :not."),
    ("subtype", "token", "restful-interaction, ISO 21089 disclose, ITI-81, DCM 110127, the event_type; :not."),
    ("outcome", "token", "0, 4, 8 or 12; :not."),
    ("_id", "token", "The event_id (a UUID)."),
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
    params.append(
        {
            "name": "_count",
            "type": "number",
            "documentation": "Page size, 1..1000 (default 100); a page may hold fewer (a scan budget per page).",
        }
    )
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
                        "supportedProfile": list(BALP_PROFILES),
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
