"""auditsvc SDK: emit PHI access events and verify the chain format."""

from ._access import AccessScope
from ._async_client import AsyncAuditClient
from ._chain import (
    FORMAT_VERSION,
    RecordTemplate,
    UnsupportedFormatVersion,
    canonical_json,
    canonical_record,
    chain_hash,
    check_format_version,
    genesis_hash,
    leaf_hash,
    make_record,
)
from ._client import AuditClient
from ._counters import Counters
from ._event import Action, Actor, ActorType, Identifier, Outcome, Patient, PhiAccess, SystemRef, new_event_id
from ._exceptions import (
    AuditError,
    ClientClosed,
    EventRejected,
    InvalidEvent,
    QueueFull,
    ServiceError,
    SpoolFull,
    SpoolLocked,
    TransportError,
)
from ._fhir import FHIRError, events_from_fhir
from ._hl7v2 import HL7v2Error, events_from_hl7v2
from ._retry import RetryPolicy

__all__ = [
    "FORMAT_VERSION",
    "AccessScope",
    "Action",
    "Actor",
    "ActorType",
    "AsyncAuditClient",
    "AuditClient",
    "AuditError",
    "ClientClosed",
    "Counters",
    "EventRejected",
    "FHIRError",
    "HL7v2Error",
    "Identifier",
    "InvalidEvent",
    "Outcome",
    "Patient",
    "PhiAccess",
    "QueueFull",
    "RecordTemplate",
    "RetryPolicy",
    "ServiceError",
    "SpoolFull",
    "SpoolLocked",
    "SystemRef",
    "TransportError",
    "UnsupportedFormatVersion",
    "canonical_json",
    "canonical_record",
    "chain_hash",
    "check_format_version",
    "events_from_fhir",
    "events_from_hl7v2",
    "genesis_hash",
    "leaf_hash",
    "make_record",
    "new_event_id",
]

__version__ = "0.2.0"
