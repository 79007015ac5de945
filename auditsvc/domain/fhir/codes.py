"""The code systems, codes and canonical URLs of the AuditEvent facade:
FHIR R4 core, DICOM (DCM), IHE, IHE BALP profiles, and the service's own."""

from __future__ import annotations

from typing import Any

# --- code systems -------------------------------------------------------------------
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
IHE_EVENT_TYPE = "urn:ihe:event-type-code"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PURPOSE_OF_USE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SECURITY_ROLE_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

# --- the service's own ----------------------------------------------------------------
AUDITSVC = "https://auditsvc.dev/fhir"
EVENT_TYPE_SYSTEM = f"{AUDITSVC}/CodeSystem/event-type"
"""The event's ``event_type`` as a subtype coding (``hl7v2-message``, ``fhir-rest``, ...)."""
DATA_ELEMENT_SYSTEM = f"{AUDITSVC}/CodeSystem/data-element"
SYSTEM_ID_SYSTEM = "urn:auditsvc:system"
"""Identifier.system of a source or destination system's ``system_id`` (agents, observer)."""
ACTOR_ID_SYSTEM = "urn:auditsvc:actor"
"""Identifier.system of the actor's ``id`` (the user or service agent)."""
CHAIN_RECORD_EXTENSION = f"{AUDITSVC}/StructureDefinition/chain-record"
"""Where the record sits in the hash chain: log, seq, leaf and chain hash,
received_at, emitter (ask ``/v1/proofs/inclusion?seq=`` for its proof)."""

# --- IHE BALP profiles ---------------------------------------------------------------
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
PATIENT_READ = BALP + "PatientRead"
PATIENT_QUERY = BALP + "PatientQuery"
PATIENT_CREATE = BALP + "PatientCreate"
PATIENT_UPDATE = BALP + "PatientUpdate"
PATIENT_DELETE = BALP + "PatientDelete"
PRIVACY_DISCLOSURE = BALP + "PrivacyDisclosure.Source"
BALP_PROFILES = (PATIENT_READ, PATIENT_QUERY, PATIENT_CREATE, PATIENT_UPDATE, PATIENT_DELETE, PRIVACY_DISCLOSURE)


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


REST = coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation")
EXPORT = coding(DCM, "110106", "Export")
AUDIT_LOG_USED = coding(DCM, "110101", "Audit Log Used")
EMERGENCY_OVERRIDE = coding(DCM, "110127", "Emergency Override Started")
DISCLOSE = coding(LIFECYCLE, "disclose", "Disclose Record Lifecycle Event")
ITI_81 = coding(IHE_EVENT_TYPE, "ITI-81", "Retrieve ATNA Audit Event")
SOURCE_ROLE = coding(DCM, "110153", "Source Role ID")
DESTINATION_ROLE = coding(DCM, "110152", "Destination Role ID")
INFORMATION_RECIPIENT = coding(PARTICIPATION_TYPE, "IRCP", "information recipient")
HUMAN_USER = coding(SECURITY_ROLE_TYPE, "humanuser", "human user")
DATA_PROCESSOR = coding(SECURITY_ROLE_TYPE, "dataprocessor", "data processor")
APPLICATION_SERVER = coding(SOURCE_TYPE, "4", "Application Server")
PERSON = coding(ENTITY_TYPE, "1", "Person")
SYSTEM_OBJECT = coding(ENTITY_TYPE, "2", "System Object")
PATIENT_ROLE = coding(OBJECT_ROLE, "1", "Patient")
DOMAIN_RESOURCE_ROLE = coding(OBJECT_ROLE, "4", "Domain Resource")
QUERY_ROLE = coding(OBJECT_ROLE, "24", "Query")
BREAK_GLASS_PURPOSE = "ETREAT"

INTERACTION_BY_ACTION = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "search-type"}
PROFILE_BY_ACTION = {
    "C": PATIENT_CREATE,
    "R": PATIENT_READ,
    "U": PATIENT_UPDATE,
    "D": PATIENT_DELETE,
    "E": PATIENT_QUERY,
}
