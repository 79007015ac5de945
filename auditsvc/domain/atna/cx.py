"""ParticipantObjectID as an HL7 v2 CX: the patient's identifiers, each with its system.

IHE ATNA writes a patient's id as a CX (``id^^^&OID&ISO^PI``); senders also
write ``id^^^NAMESPACE``, ``id^^^NAMESPACE&OID&ISO``, repetitions joined by
``~``, or the bare id. The system follows the SDK's HL7 v2 helper, so the
same MRN recorded from an interface engine and from an ATNA message links:

* CX-4 with a universal id typed ISO (an OID), UUID or URI: ``urn:oid:OID``,
  ``urn:uuid:...``, the URI;
* a CX-5 type naming a national space (``SS``, ``NPI``, ``MC``): that space;
* a CX-4 namespace: the canonical system the identifier policy knows for it,
  else the namespace qualified by the CX-5 type (``MAINHOSP^MR``), since one
  local authority issues several kinds of number;
* no CX-4 at all: the ParticipantObjectIDTypeCode when it is an OID or a
  national type (flagged ``authority_from_id_type``); else the authority is
  unknown and the id is recorded under ``urn:auditsvc:unknown-authority:``
  followed by the message's source system, flagged ``authority_from_source``,
  so that bare ids from two senders never link two different patients.

Placeholder values (``UNKNOWN``, ``000000000``) and values that cannot be
stored are left out and flagged, as the SDK helpers do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from auditsvc_sdk.helpers import Assumed, IdentifierPolicy

__all__ = ["AUTHORITY_FROM_ID_TYPE", "UNKNOWN_AUTHORITY_SYSTEM", "Identifiers", "cx_identifiers"]

UNKNOWN_AUTHORITY_SYSTEM = "urn:auditsvc:unknown-authority:"
AUTHORITY_FROM_ID_TYPE = "authority_from_id_type"
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"S": "^", "T": "&", "R": "~", "E": "\\", "F": "|"}
_ESCAPE = re.compile(r"\\([STREF])\\")
_MAX_VALUE = 128
_MAX_SYSTEM = 256


@dataclass
class Identifiers:
    """One patient's (system, value) pairs, distinct, in the order met, and what was assumed."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)

    def add(self, system: str, value: str, policy: IdentifierPolicy) -> None:
        canonical = policy.canonical(system, value)
        if canonical is None:
            self.assumed.append(Assumed.PLACEHOLDER_IDENTIFIER)
            return
        system, value = canonical
        if not (0 < len(system) <= _MAX_SYSTEM and 0 < len(value) <= _MAX_VALUE) or _CONTROL.search(system + value):
            self.assumed.append(Assumed.UNUSABLE_IDENTIFIER)
            return
        if (system, value) not in self.pairs:
            self.pairs.append((system, value))


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(1)], text).strip()


def _universal(namespace: str, universal: str, kind: str) -> str | None:
    bare = universal.removeprefix("urn:oid:")
    if universal and kind in ("ISO", "") and _OID.fullmatch(bare):
        return "urn:oid:" + bare
    if universal and kind == "UUID":
        return "urn:uuid:" + universal.lower().removeprefix("urn:uuid:")
    if universal and kind in ("URI", "URL"):
        return universal
    if not universal and not kind and _OID.fullmatch(namespace.removeprefix("urn:oid:")):
        return "urn:oid:" + namespace.removeprefix("urn:oid:")  # an OID written in CX-4.1
    return None


def _system(
    authority: str, id_type: str, value: str, type_code: str | None, source: str, policy: IdentifierPolicy
) -> tuple[str, str | None]:
    """(system, assumption or None) for one repetition."""
    namespace, _, rest = authority.partition("&")
    universal, _, kind = rest.partition("&")
    namespace, universal, kind = _unescape(namespace), _unescape(universal), _unescape(kind).upper()
    found = _universal(namespace, universal, kind)
    if found is not None:
        return policy.canonical_system(found), None
    typed = policy.system_for_type(id_type, value)
    if typed is not None:
        return typed, None
    local = namespace or universal
    if local:
        if id_type == "DL":
            state = policy.state_driver_licence(local)
            if state is not None:
                return state, None
        known = policy.known_system(local)
        return (known, None) if known is not None else (f"{local}^{id_type}" if id_type else local, None)
    if type_code:
        bare = type_code.removeprefix("urn:oid:")
        if _OID.fullmatch(bare):
            return f"urn:oid:{bare}", AUTHORITY_FROM_ID_TYPE
        typed = policy.system_for_type(type_code, value)
        if typed is not None:
            return typed, AUTHORITY_FROM_ID_TYPE
    return UNKNOWN_AUTHORITY_SYSTEM + source, Assumed.AUTHORITY_FROM_SOURCE


def cx_identifiers(text: str, type_code: str | None, source: str, policy: IdentifierPolicy) -> Identifiers:
    """The identifiers of one ParticipantObjectID (a CX, its repetitions, or a bare id)."""
    found = Identifiers()
    for repetition in text.split("~"):
        components = repetition.split("^")
        value = _unescape(components[0])
        if not value or value == '""':
            continue
        if policy.is_placeholder(value):
            found.assumed.append(Assumed.PLACEHOLDER_IDENTIFIER)
            continue
        authority = components[3] if len(components) > 3 else ""
        id_type = _unescape(components[4]).upper() if len(components) > 4 else ""
        system, assumed = _system(authority, id_type, value, type_code, source, policy)
        if assumed:
            found.assumed.append(assumed)
        found.add(system, value, policy)
    return found
