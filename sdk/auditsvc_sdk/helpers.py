"""Events from HL7 v2 messages and FHIR R4 resources, best effort and never silent.

``read_hl7v2(message, ...)`` and ``read_fhir(resource_or_bundle, ...)``
return a :class:`HelperResult`: the events of every patient the input names
(each flagged in ``attributes["assumed"]`` with what had to be assumed, see
:class:`Assumed`), and a :class:`Refusal` (unit index, :class:`Cause` code,
a sentence without PHI) for every message or Bundle entry that names no
patient or cannot be read. An integration records the events and counts or
alerts on the refusals; the pre-go-live survey tool groups both by cause.

:class:`IdentifierPolicy` canonicalises identifier systems (SSN, NPI,
Medicare, state driver's licences) and keeps placeholder values
(``REDACTED``, ``000000000``) from linking patients; both helpers take one as
``identifier_policy=``.

``events_from_hl7v2`` and ``events_from_fhir`` are the older list-returning
forms of the same helpers: they raise :class:`HL7v2Error` / :class:`FHIRError`
when the input yields no event at all, and do not report refusals of single
messages or entries.
"""

from ._fhir import FHIRError, events_from_fhir, read_fhir
from ._hl7v2 import HL7v2Error, events_from_hl7v2, parse_hl7_timestamp, read_hl7v2
from ._identifiers import (
    DEFAULT_PLACEHOLDERS,
    DEFAULT_SYSTEMS,
    DEFAULT_TYPE_SYSTEMS,
    STATE_DL_OIDS,
    UNLINKED_SYSTEM,
    US_MBI,
    US_MEDICARE_HICN,
    US_NPI,
    US_SSN,
    IdentifierPolicy,
)
from ._results import ASSUMED_ATTRIBUTE, Assumed, Cause, HelperResult, Refusal, assumed_codes

__all__ = [
    "ASSUMED_ATTRIBUTE",
    "DEFAULT_PLACEHOLDERS",
    "DEFAULT_SYSTEMS",
    "DEFAULT_TYPE_SYSTEMS",
    "STATE_DL_OIDS",
    "UNLINKED_SYSTEM",
    "US_MBI",
    "US_MEDICARE_HICN",
    "US_NPI",
    "US_SSN",
    "Assumed",
    "Cause",
    "FHIRError",
    "HL7v2Error",
    "HelperResult",
    "IdentifierPolicy",
    "Refusal",
    "assumed_codes",
    "events_from_fhir",
    "events_from_hl7v2",
    "parse_hl7_timestamp",
    "read_fhir",
    "read_hl7v2",
]
