"""An ATNA audit message to the service's events: one per patient, best effort, never silent.

Decisions (where DICOM, RFC 3881 or the issue left a choice) are listed in
docs/atna.md ("Mapping"); the short form:

* EventID, EventTypeCode, EventActionCode, EventDateTime,
  EventOutcomeIndicator and PurposeOfUse give event_type (``codes``),
  action, occurred_at, outcome and purpose_of_use; the raw codes go to
  ``attributes`` (``origin: atna-syslog``, ``atna_event_id``...).
* The requestor (a person before an application) is the actor; the
  participants with RoleIDCode 110153 (Source) and 110152 (Destination) are
  the source and destination systems, swapped in a query: there 110153 is
  the system that asked, and the PHI flows from the one that answered to it
  (as the FHIR feed reads BALP's agents, domain/fhir/feed_agents.py). The
  AuditSourceIdentification is the observer (``attributes.observer``), and
  stands in as source when no participant names one (``participants``).
* Each ParticipantObjectIdentification with role 1 (Patient) is a patient,
  its ParticipantObjectID read as a CX (``cx``); every other object names a
  data element (its role and ID type, never its id or contents).
* Free text that may be PHI (ParticipantObjectName, ParticipantObjectQuery,
  ParticipantObjectDetail, ParticipantObjectDescription, UserName,
  EventOutcomeDescription) is dropped, never stored: ``attributes.phi_dropped``
  names the elements.
* A message naming no patient (login, security alert, audit log used) is
  refused (``no_patient``): an event is one access to one patient's data,
  and a stand-in patient would count as one in every report's patient
  count. The listener keeps it whole in quarantine; nothing is lost.
* Whatever had to be assumed is listed in ``attributes.assumed``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from auditsvc_sdk import PhiAccess
from auditsvc_sdk.helpers import ASSUMED_ATTRIBUTE, UNLINKED_SYSTEM, Assumed, IdentifierPolicy
from pydantic import ValidationError

from ..ingest import validation_errors
from . import codes
from .cx import cx_identifiers
from .document import AtnaLimits, read_document
from .draft import Draft, Flag, as_code, as_label
from .errors import AtnaUnmappable
from .message import AuditMessage, Coded, ObjectId, read_message
from .origin import AtnaOrigin
from .participants import actor_of, observer_of, systems_of

__all__ = ["ORIGIN", "map_audit_message"]

ORIGIN = "atna-syslog"
DEFAULT_LIMITS = AtnaLimits()
# The SDK helpers' policy, and the stand-ins archives write for "no patient id" (dcm4chee: "<none>").
DEFAULT_POLICY = IdentifierPolicy().with_placeholders({"<none>", "<unknown>", "<null>", "<empty>"})
# Fixed for ever: changing it would store every resent message a second time.
EVENT_ID_NAMESPACE = uuid.UUID("6d1f3c52-0b9e-5a7e-9c41-3a2e8f0d7b19")

_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?",
    re.ASCII,
)
_ACTIONS = frozenset("CRUDE")
_OUTCOMES = frozenset({0, 4, 8, 12})
_SMALL_NUMBER = re.compile(r"[0-9]{1,4}")


def _occurred_at(text: str | None, draft: Draft) -> datetime:
    where = "AuditMessage/EventIdentification/@EventDateTime"
    if text is None:
        raise AtnaUnmappable("bad_event_time", f"{where} is missing")
    m = _DATETIME.fullmatch(text)
    if m is None:
        raise AtnaUnmappable("bad_event_time", f"{where} is not an xs:dateTime (YYYY-MM-DDThh:mm:ss[.f][Z|+hh:mm])")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = m.groups()
    if zulu:
        zone: timezone = UTC
    elif sign:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= timedelta(hours=24):
            raise AtnaUnmappable("bad_event_time", f"{where} has a UTC offset out of range")
        zone = timezone(-offset if sign == "-" else offset)
    else:
        zone = UTC
        draft.assumed.append(Flag.TIME_ZONE)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, zone)
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise AtnaUnmappable("bad_event_time", f"{where} is not a valid date and time") from None
    return value


def _outcome_and_action(message: AuditMessage, draft: Draft) -> None:
    raw = (message.action or "").strip().upper()
    if raw in _ACTIONS and len(raw) == 1:
        draft.fields["action"] = raw
    else:
        draft.fields["action"] = codes.ACTION_BY_EVENT_ID.get(message.event_id.code, "R")
        draft.assumed.append(Flag.ACTION)
    outcome = (message.outcome or "").strip()
    number = int(outcome) if _SMALL_NUMBER.fullmatch(outcome) else None
    if number in _OUTCOMES:
        draft.fields["outcome"] = number
        return
    if not outcome:
        draft.fields["outcome"] = 0
        draft.assumed.append(Flag.OUTCOME)
        return
    # A value outside 0/4/8/12 still says something failed: the next severity up, never success.
    draft.fields["outcome"] = next((o for o in (4, 8, 12) if number is not None and number <= o), 12)
    draft.assumed.append(Flag.OUTCOME_UNRECOGNISED)
    if as_code(outcome):
        draft.attributes["atna_outcome"] = outcome


def _purpose(purposes: tuple[Coded, ...], draft: Draft) -> None:
    readable = [p.code for p in purposes if as_code(p.code)]
    if len(readable) < len(purposes):
        draft.assumed.append(Flag.PURPOSE_UNREADABLE)
    if readable:
        draft.fields["purpose_of_use"] = readable[0]
    if len(readable) > 1:
        draft.attributes["purposes_of_use"] = ",".join(readable)[:1024]


def _codes_attributes(message: AuditMessage, origin: AtnaOrigin, draft: Draft) -> None:
    attrs = draft.attributes
    attrs["origin"] = ORIGIN
    if as_code(message.event_id.code):
        attrs["atna_event_id"] = message.event_id.code
    if as_label(message.event_id.system):
        attrs["atna_event_id_system"] = message.event_id.system
    types = [t.code for t in message.type_codes if as_code(t.code)]
    if types:
        attrs["atna_event_type_codes"] = ",".join(types)[:1024]
    if origin.msgid and as_code(origin.msgid.replace("+", "-")):
        attrs["atna_msgid"] = origin.msgid
    attrs["atna_transport"] = origin.transport


def _patient_role(obj: ObjectId) -> str | None:
    """Whether an object is a patient: ``"stated"`` (role 1), ``"assumed"`` (no role, a person
    with ID type 2 "Patient Number"), or None."""
    if obj.role is not None:
        return "stated" if obj.role.strip() == codes.PATIENT_ROLE else None
    if obj.type_code == codes.PERSON and obj.id_type is not None and obj.id_type.code == codes.PATIENT_NUMBER:
        return "assumed"
    return None


def _element(obj: ObjectId) -> str:
    """A data element naming an object by its role and ID type (``codes.ID_TYPES``, else the code):
    never its id, name or contents, nor the sender's display text for the type."""
    base = codes.OBJECT_ROLES.get(obj.role or "") or codes.OBJECT_TYPES.get(obj.type_code or "") or "Object"
    kind = None
    if obj.id_type is not None:
        kind = codes.ID_TYPES.get(obj.id_type.code) or as_code(obj.id_type.code)
    return f"{base} ({kind})"[:128] if kind and kind != base else base


@dataclass(frozen=True)
class _Patient:
    obj: ObjectId
    pairs: tuple[tuple[str, str], ...]
    assumed: tuple[str, ...]


def _patients(message: AuditMessage, source: str, policy: IdentifierPolicy) -> list[_Patient]:
    found: list[_Patient] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for obj in message.objects:
        role = _patient_role(obj)
        if role is None:
            continue
        type_code = obj.id_type.code if obj.id_type else None
        ids = cx_identifiers(obj.object_id or "", type_code, source, policy)
        pairs = tuple(ids.pairs[:20])
        if pairs and pairs in seen:
            continue  # the same patient listed twice
        seen.add(pairs)
        assumed = [Flag.PATIENT_ROLE] if role == "assumed" else []
        found.append(_Patient(obj, pairs, (*assumed, *ids.assumed)))
    return found


def _dropped(message: AuditMessage) -> str | None:
    names = {name for obj in message.objects for name in obj.free_text}
    if any(p.has_user_name for p in message.participants):
        names.add("UserName")
    if message.has_outcome_description:
        names.add("EventOutcomeDescription")
    return ",".join(sorted(names)) or None


def _event(
    draft: Draft, patient: _Patient, index: int, count: int, message: AuditMessage, digest: bytes
) -> dict[str, Any]:
    event_id = uuid.uuid5(EVENT_ID_NAMESPACE, f"{digest.hex()}/{index}")
    assumed = [*draft.assumed, *patient.assumed]
    attributes = dict(draft.attributes)
    pairs = patient.pairs or ((UNLINKED_SYSTEM, str(event_id)),)
    if not patient.pairs:
        assumed.append(Assumed.PATIENT_UNIDENTIFIED)
    identifiers = [{"system": s, "value": v} for s, v in pairs]
    lifecycle = patient.obj.lifecycle
    # Other objects name what was accessed; other patients are their own events, not data of this one.
    elements = list(dict.fromkeys(["Patient", *(_element(o) for o in message.objects if _patient_role(o) is None)]))
    if len(elements) > 200:
        elements = elements[:200]
        assumed.append(Flag.DATA_ELEMENTS_CAPPED)
    event_type, known = codes.event_type_of(message.event_id.code, [t.code for t in message.type_codes], lifecycle)
    if not known:
        assumed.append(Flag.EVENT_TYPE)
    if lifecycle and as_code(lifecycle):
        attributes["atna_lifecycle"] = codes.LIFECYCLE.get(lifecycle, lifecycle)
    if count > 1:
        attributes["patient_index"] = index
        attributes["patients_in_message"] = count
    if assumed:
        attributes[ASSUMED_ATTRIBUTE] = ",".join(dict.fromkeys(assumed))
    return {
        "event_id": str(event_id),
        **draft.fields,
        "event_type": event_type,
        "patient": {"identifiers": identifiers},
        "data_elements": elements,
        "attributes": attributes,
    }


def map_audit_message(
    msg: bytes,
    origin: AtnaOrigin,
    *,
    limits: AtnaLimits = DEFAULT_LIMITS,
    policy: IdentifierPolicy = DEFAULT_POLICY,
) -> list[dict[str, Any]]:
    """The MSG part of one syslog message (may start with a UTF-8 BOM) -> events in the
    service's event JSON shape (as ``POST /v1/events`` takes them), one per patient.

    Raises :class:`AtnaUnmappable` (and nothing else) when the message cannot
    be mapped; its ``detail`` never quotes the message.

    Each event_id is a UUIDv5 over the SHA-256 of the message's *content*
    (``document.content_digest``: names, attributes and text, not the bytes)
    and the patient's position in the message. The syslog header (PRI, time,
    host, MSGID) is not part of MSG and the sender is not an input, so a
    message resent with a new header, over another transport, from another
    relay, re-indented or with a BOM, yields the same event_ids, and the
    service stores nothing twice. Two accesses differ at least in
    EventDateTime (to the millisecond, as senders write it) or a participant,
    so distinct events do not collide. The digest covers the whole message, so
    an event_id reveals nothing about any one identifier in it.
    """
    document = read_document(msg, limits)
    message = read_message(document.root)
    draft = Draft()
    occurred_at = _occurred_at(message.date_time, draft)
    observer = observer_of(message, draft)
    source, destination = systems_of(message, observer, draft)
    _outcome_and_action(message, draft)
    _purpose(message.purposes, draft)
    _codes_attributes(message, origin, draft)
    dropped = _dropped(message)
    if dropped:
        draft.attributes["phi_dropped"] = dropped
    draft.fields.update(
        occurred_at=occurred_at,
        source={"system_id": source},
        destination={"system_id": destination},
        actor=actor_of(message, observer, draft),
    )
    patients = _patients(message, source, policy)
    if len(patients) > limits.max_patients:
        raise AtnaUnmappable(
            "too_many_patients", f"the message names {len(patients)} patients; at most {limits.max_patients} are mapped"
        )
    if not patients:
        raise AtnaUnmappable(
            "no_patient",
            "no AuditMessage/ParticipantObjectIdentification has ParticipantObjectTypeCodeRole 1 (Patient): "
            "the service records accesses to a patient's data",
        )
    return _validated([_event(draft, p, i, len(patients), message, document.digest) for i, p in enumerate(patients)])


def _validated(drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        events = [PhiAccess.model_validate(d) for d in drafts]
    except ValidationError as exc:
        where = "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in validation_errors(exc)[:5])
        raise AtnaUnmappable("invalid_event", f"the event built from the message is not valid ({where})") from None
    return [event.to_json() for event in events]
