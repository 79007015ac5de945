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
from ._evidence import EvidenceError, EvidenceRejected, EvidenceReport, EvidenceUnreadable, verify_package
from ._exceptions import (
    AuditError,
    ClientClosed,
    EventRejected,
    InvalidEvent,
    QueueFull,
    ServiceError,
    SpoolFull,
    SpoolLocked,
    SpoolUnsupported,
    TransportError,
)
from ._fhir import FHIRError, events_from_fhir
from ._hl7v2 import HL7v2Error, events_from_hl7v2
from ._merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    RootMismatchError,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from ._note import (
    Checkpoint,
    CosignatureVerifier,
    NoteError,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    open_note,
    sign_note,
    verify_cosignature,
)
from ._retry import RetryPolicy
from ._version import __version__ as __version__

__all__ = [
    "EMPTY_ROOT",
    "FORMAT_VERSION",
    "AccessScope",
    "Action",
    "Actor",
    "ActorType",
    "AsyncAuditClient",
    "AuditClient",
    "AuditError",
    "Checkpoint",
    "ClientClosed",
    "CompactRange",
    "CosignatureVerifier",
    "Counters",
    "EventRejected",
    "EvidenceError",
    "EvidenceRejected",
    "EvidenceReport",
    "EvidenceUnreadable",
    "FHIRError",
    "HL7v2Error",
    "Identifier",
    "InvalidEvent",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "Outcome",
    "Patient",
    "PhiAccess",
    "ProofError",
    "QueueFull",
    "RecordTemplate",
    "RetryPolicy",
    "RootMismatchError",
    "ServiceError",
    "SpoolFull",
    "SpoolLocked",
    "SpoolUnsupported",
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
    "open_checkpoint",
    "open_note",
    "root_from_leaf_hashes",
    "sign_note",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
    "verify_package",
]
