"""auditsvc SDK: emit PHI access events and verify the chain format."""

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
from ._event import Action, Actor, ActorType, Identifier, Outcome, Patient, PhiAccess, SystemRef, new_event_id
from ._exceptions import AuditError, EventRejected, ServiceError, TransportError

__all__ = [
    "FORMAT_VERSION",
    "Action",
    "Actor",
    "ActorType",
    "AuditClient",
    "AuditError",
    "EventRejected",
    "Identifier",
    "Outcome",
    "Patient",
    "PhiAccess",
    "RecordTemplate",
    "ServiceError",
    "SystemRef",
    "TransportError",
    "UnsupportedFormatVersion",
    "canonical_json",
    "canonical_record",
    "chain_hash",
    "check_format_version",
    "genesis_hash",
    "leaf_hash",
    "make_record",
    "new_event_id",
]

__version__ = "0.1.0"
