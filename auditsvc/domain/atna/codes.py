"""The code tables of DICOM PS3.15 A.5 / RFC 3881 audit messages that the mapping reads.

Codes are compared as sent (DICOM's are digits); names are the standards'
own, shortened. An EventID outside ``EVENT_TYPES`` still maps (to
``atna-event``, flagged); a role or life-cycle code outside its table still
names its object by the number.
"""

from __future__ import annotations

__all__ = [
    "ACTION_BY_EVENT_ID",
    "DESTINATION_ROLE",
    "EVENT_TYPES",
    "ID_TYPES",
    "LIFECYCLE",
    "OBJECT_ROLES",
    "OBJECT_TYPES",
    "PATIENT_ROLE",
    "SOURCE_ROLE",
    "SOURCE_TYPES",
    "event_type_of",
]

# DCM EventID (PS3.16 CID 400 "Audit Event ID") -> the service's short event_type.
EVENT_TYPES = {
    "110100": "application-activity",
    "110101": "audit-log-used",
    "110102": "dicom-transfer-begin",
    "110103": "dicom-instances-accessed",
    "110104": "dicom-instances-transferred",
    "110105": "dicom-study-deleted",
    "110106": "export",
    "110107": "import",
    "110108": "network-entry",
    "110109": "order-record",
    "110110": "patient-record",
    "110111": "procedure-record",
    "110112": "query",
    "110113": "security-alert",
    "110114": "user-authentication",
}
UNKNOWN_EVENT_TYPE = "atna-event"
# EventTypeCode 110127 (CID 401 "Emergency Override Started"): the service's break-glass, which the
# review queue lists (store/readmodel.py; the FHIR feed maps it alike).
BREAK_GLASS_TYPE = "110127"
# EventTypeCode of 110114 (CID 403): a login or a logout, more useful than "user-authentication".
_AUTHENTICATION_TYPES = {"110122": "login", "110123": "logout"}

# EventActionCode when a sender leaves it out: what PS3.15 A.5.3 specifies for each EventID.
ACTION_BY_EVENT_ID = {
    "110100": "E",
    "110101": "R",
    "110102": "E",
    "110103": "R",
    "110104": "R",
    "110105": "D",
    "110106": "R",
    "110107": "C",
    "110108": "E",
    "110109": "R",
    "110110": "R",
    "110111": "R",
    "110112": "E",
    "110113": "E",
    "110114": "E",
}

QUERY_EVENT = "110112"
# ActiveParticipant RoleIDCode (CID 402).
SOURCE_ROLE = "110153"
DESTINATION_ROLE = "110152"
APPLICATION_ROLES = frozenset({"110150", "110151"})  # Application, Application Launcher
FLOW_ROLES = frozenset({SOURCE_ROLE, DESTINATION_ROLE}) | APPLICATION_ROLES

# ParticipantObjectTypeCode (RFC 3881 5.5.1).
OBJECT_TYPES = {"1": "Person", "2": "System Object", "3": "Organization", "4": "Other"}
PERSON = "1"
# ParticipantObjectTypeCodeRole (RFC 3881 5.5.2).
PATIENT_ROLE = "1"
OBJECT_ROLES = {
    "1": "Patient",
    "2": "Location",
    "3": "Report",
    "4": "Resource",
    "5": "Master file",
    "6": "User",
    "7": "List",
    "8": "Doctor",
    "9": "Subscriber",
    "10": "Guarantor",
    "11": "Security User Entity",
    "12": "Security User Group",
    "13": "Security Resource",
    "14": "Security Granularity Definition",
    "15": "Provider",
    "16": "Data Destination",
    "17": "Data Repository",
    "18": "Schedule",
    "19": "Customer",
    "20": "Job",
    "21": "Job Stream",
    "22": "Table",
    "23": "Routing Criteria",
    "24": "Query",
}
# ParticipantObjectIDTypeCode 2 (RFC 3881 5.5.4): "Patient Number".
PATIENT_NUMBER = "2"
# ParticipantObjectIDTypeCode by code: RFC 3881 5.5.4, DICOM CID 404, and the IHE XDS metadata UUIDs
# that ITI transactions use. Objects are named from this table (or by their code), never by the
# sender's display text: a data element is stored in clear.
ID_TYPES = {
    "1": "Medical Record Number",
    "2": "Patient Number",
    "3": "Encounter Number",
    "4": "Enrollee Number",
    "5": "Social Security Number",
    "6": "Account Number",
    "7": "Guarantor Number",
    "8": "Report Name",
    "9": "Report Number",
    "10": "Search Criteria",
    "11": "User Identifier",
    "12": "URI",
    "110180": "Study Instance UID",
    "110181": "SOP Class UID",
    "110182": "Node ID",
    "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd": "XDS Submission Set",
    "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1": "XDS Document Entry",
    "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2": "XDS Folder",
    "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab": "XDS Document Entry unique id",
    "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8": "XDS Submission Set unique id",
}
# ParticipantObjectDataLifeCycle (RFC 3881 5.5.3, ISO 21089).
LIFECYCLE = {
    "1": "origination",
    "2": "import",
    "3": "amendment",
    "4": "verification",
    "5": "translation",
    "6": "access",
    "7": "de-identification",
    "8": "aggregation",
    "9": "report",
    "10": "export",
    "11": "disclosure",
    "12": "receipt-of-disclosure",
    "13": "archiving",
    "14": "logical-deletion",
    "15": "destruction",
}
DISCLOSURE_LIFECYCLE = "11"
QUERY_ROLE = "24"
# AuditSourceTypeCode (RFC 3881 5.4.3).
SOURCE_TYPES = {
    "1": "end-user-interface",
    "2": "data-acquisition-device",
    "3": "web-server",
    "4": "application-server",
    "5": "database-server",
    "6": "security-server",
    "7": "network-component",
    "8": "operating-software",
    "9": "other",
}


def event_type_of(event_id: str, type_codes: list[str], lifecycle: str | None) -> tuple[str, bool]:
    """The event_type for an EventID, its EventTypeCodes and the patient's data life cycle;
    and whether the EventID was known. A patient object whose life cycle is
    11 (Disclosure) makes the event a ``disclosure``, which the accounting of
    disclosures (§164.528) counts; EventTypeCode 110127 (Emergency Override
    Started) a ``break-glass``, which the review queue lists."""
    if lifecycle == DISCLOSURE_LIFECYCLE:
        return "disclosure", event_id in EVENT_TYPES
    if BREAK_GLASS_TYPE in type_codes:
        return "break-glass", event_id in EVENT_TYPES
    if event_id == "110114":
        for code in type_codes:
            if code in _AUTHENTICATION_TYPES:
                return _AUTHENTICATION_TYPES[code], True
    known = EVENT_TYPES.get(event_id)
    return (known, True) if known else (UNKNOWN_EVENT_TYPE, False)
