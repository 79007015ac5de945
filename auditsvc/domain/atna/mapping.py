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
  stands in as source when no participant names one.
* Each ParticipantObjectIdentification with role 1 (Patient) is a patient,
  its ParticipantObjectID read as a CX (``cx``); every other object names a
  data element (its role and ID type, never its id or contents).
* Free text that may be PHI (ParticipantObjectName, ParticipantObjectQuery,
  ParticipantObjectDetail, ParticipantObjectDescription, UserName,
  EventOutcomeDescription) is dropped, never stored: ``attributes.phi_dropped`` names the elements.
* A message naming no patient (login, security alert, audit log used) is
  refused (``no_patient``): an event is one access to one patient's data,
  and a stand-in patient would count as one in every report's patient
  count. The listener keeps it whole in quarantine; nothing is lost.
* Whatever had to be assumed is listed in ``attributes.assumed``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from auditsvc_sdk import PhiAccess
from auditsvc_sdk.helpers import ASSUMED_ATTRIBUTE, UNLINKED_SYSTEM, Assumed, IdentifierPolicy
from pydantic import ValidationError

from ..ingest import validation_errors
from . import codes
from .cx import cx_identifiers
from .document import AtnaLimits, read_document
from .errors import AtnaUnmappable
from .message import AuditMessage, Coded, ObjectId, Participant, read_message
from .origin import AtnaOrigin

__all__ = ["ORIGIN", "map_audit_message"]

ORIGIN = "atna-syslog"
UNKNOWN_SYSTEM = "unknown"
DEFAULT_LIMITS = AtnaLimits()
# The SDK helpers' policy, and the stand-ins archives write for "no patient id" (dcm4chee: "<none>").
DEFAULT_POLICY = IdentifierPolicy().with_placeholders({"<none>", "<unknown>", "<null>", "<empty>"})
# Fixed for ever: changing it would store every resent message a second time.
EVENT_ID_NAMESPACE = uuid.UUID("6d1f3c52-0b9e-5a7e-9c41-3a2e8f0d7b19")

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:()/#+-]{0,95}")
_NOT_SYSTEM_CHAR = re.compile(r"[^A-Za-z0-9_.:/@+~-]+")
_EDGES = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
# "APPLICATION|FACILITY", the HL7 v2 sender as DICOM and IHE write it in UserID.
_HL7_APPLICATION = re.compile(r"([^|]+)\|([^|]+)")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?",
    re.ASCII,
)
_ACTIONS = frozenset("CRUDE")
_OUTCOMES = frozenset({0, 4, 8, 12})
_SMALL_NUMBER = re.compile(r"[0-9]{1,4}")
# WS-Addressing's "reply to the caller": the UserID IHE gives a SOAP requestor that names no endpoint.
_ANONYMOUS = frozenset(
    {
        "http://www.w3.org/2005/08/addressing/anonymous",
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous",
    }
)


class _Flag:
    """The mapping's own ``attributes.assumed`` codes (the SDK's ``Assumed`` codes are used where they fit)."""

    ACTION = "action_from_event_id"
    OUTCOME = "outcome_assumed_success"
    OUTCOME_UNRECOGNISED = "outcome_unrecognised"
    TIME_ZONE = "time_zone_assumed_utc"
    EVENT_TYPE = "event_type_unknown"
    PATIENT_ROLE = "patient_role_assumed"
    ACTOR_NOT_REQUESTOR = "actor_not_requestor"
    ACTOR_FROM_OBSERVER = "actor_from_observer"
    ACTOR_ID = "actor_id_from_alternative"
    SOURCE_FROM_OBSERVER = "source_from_observer"
    SOURCE_FROM_APPLICATION = "source_from_application"
    DESTINATION_FROM_SOURCE = "destination_from_source"
    SYSTEM_ID_REWRITTEN = "system_id_rewritten"
    PURPOSE_UNREADABLE = "purpose_unreadable"
    DATA_ELEMENTS_CAPPED = "data_elements_capped"


@dataclass
class _Common:
    """What every event of one message shares."""

    assumed: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


def _code(text: str | None) -> str | None:
    return text if text and _CODE.fullmatch(text) else None


def _label(text: str | None) -> str | None:
    return text if text and _LABEL.fullmatch(text) else None


def _system_id(text: str | None, common: _Common) -> str | None:
    """A participant's id as a system id (``[A-Za-z0-9][A-Za-z0-9_.:/@+~-]{0,127}``), rewritten (flagged) if need be."""
    if not text:
        return None
    hl7 = _HL7_APPLICATION.fullmatch(text.strip())
    # As the SDK's HL7 v2 helper names the sender of MSH-3/MSH-4, so the two sources of one interface agree.
    raw = f"{hl7[1]}@{hl7[2]}" if hl7 else text.strip()
    name = _EDGES.sub("", _NOT_SYSTEM_CHAR.sub("-", raw))[:128]
    name = _EDGES.sub("", name)
    if not name:
        return None
    if name != text:
        common.assumed.append(_Flag.SYSTEM_ID_REWRITTEN)
    return name


def _occurred_at(text: str | None, common: _Common) -> datetime:
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
        common.assumed.append(_Flag.TIME_ZONE)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, zone)
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise AtnaUnmappable("bad_event_time", f"{where} is not a valid date and time") from None
    return value


def _is_system(p: Participant) -> bool:
    if p.user_type is not None:
        return p.user_type.strip() == "2"
    return bool(p.role_codes & codes.FLOW_ROLES)


def _actor(message: AuditMessage, observer: str | None, common: _Common) -> dict[str, Any]:
    requestors = [p for p in message.participants if p.requestor]
    people = [p for p in requestors if not _is_system(p)]
    chosen = people[0] if people else requestors[0] if requestors else None
    if chosen is None:
        named = [p for p in message.participants if _user_id(p) or p.alternative_id]
        chosen = next((p for p in named if codes.SOURCE_ROLE in p.role_codes), named[0] if named else None)
        if chosen is not None:
            common.assumed.append(_Flag.ACTOR_NOT_REQUESTOR)
    actor_id = _user_id(chosen) if chosen else None
    if chosen is not None and actor_id is None:
        actor_id = chosen.alternative_id
        common.assumed.append(_Flag.ACTOR_ID)
    if chosen is None or actor_id is None:
        common.assumed.append(_Flag.ACTOR_FROM_OBSERVER)
        return {"id": observer or UNKNOWN_SYSTEM, "type": "system"}
    actor: dict[str, Any] = {"id": actor_id[:256], "type": "system" if _is_system(chosen) else "user"}
    role = next((r for r in chosen.roles if r.code not in codes.FLOW_ROLES), None)
    if role is not None:
        actor["role"] = (_label(role.display) or role.code)[:128]
    if chosen.network_access_point and _label(chosen.network_access_point):
        common.attributes["actor_network_access_point"] = chosen.network_access_point
    return actor


def _user_id(p: Participant) -> str | None:
    return None if p.user_id in _ANONYMOUS else p.user_id


def _participant_system(message: AuditMessage, role: str, common: _Common) -> str | None:
    """The system id of the participant in ``role``: its UserID (AlternativeUserID is a process id,
    new at every restart, so never a system's name)."""
    for p in message.participants:
        if role in p.role_codes:
            found = _system_id(_user_id(p), common)
            if found is not None:
                return found
    return None


def _is_query(message: AuditMessage) -> bool:
    return message.event_id.code == codes.QUERY_EVENT or any(o.role == codes.QUERY_ROLE for o in message.objects)


def _systems(message: AuditMessage, observer: str | None, common: _Common) -> tuple[str, str]:
    initiator = _participant_system(message, codes.SOURCE_ROLE, common)
    responder = _participant_system(message, codes.DESTINATION_ROLE, common)
    source, destination = (responder, initiator) if _is_query(message) else (initiator, responder)
    if source is None:
        for application in codes.APPLICATION_ROLES:
            source = _participant_system(message, application, common)
            if source is not None:
                common.assumed.append(_Flag.SOURCE_FROM_APPLICATION)
                break
    if source is None and observer is not None:
        source = observer
        common.assumed.append(_Flag.SOURCE_FROM_OBSERVER)
    if source is None:
        source = UNKNOWN_SYSTEM
        common.assumed.append(Assumed.SOURCE_UNKNOWN)
    if destination is None:
        destination = source
        common.assumed.append(_Flag.DESTINATION_FROM_SOURCE)
    return source, destination


def _observer(message: AuditMessage, common: _Common) -> str | None:
    if not message.sources:
        return None
    first = message.sources[0]
    observer = _system_id(first.source_id, common)
    if observer:
        common.attributes["observer"] = observer
    site = _label(first.site_id)
    if site:
        common.attributes["observer_site"] = site
    kinds = [codes.SOURCE_TYPES.get(c, c) for c in first.type_codes if _code(c)]
    if kinds:
        common.attributes["observer_type"] = ",".join(kinds)[:1024]
    return observer


def _outcome_and_action(message: AuditMessage, common: _Common) -> None:
    raw = (message.action or "").strip().upper()
    if raw in _ACTIONS and len(raw) == 1:
        common.fields["action"] = raw
    else:
        common.fields["action"] = codes.ACTION_BY_EVENT_ID.get(message.event_id.code, "R")
        common.assumed.append(_Flag.ACTION)
    outcome = (message.outcome or "").strip()
    number = int(outcome) if _SMALL_NUMBER.fullmatch(outcome) else None
    if number in _OUTCOMES:
        common.fields["outcome"] = number
        return
    if not outcome:
        common.fields["outcome"] = 0
        common.assumed.append(_Flag.OUTCOME)
        return
    # A value outside 0/4/8/12 still says something failed: the next severity up, never success.
    common.fields["outcome"] = next((o for o in (4, 8, 12) if number is not None and number <= o), 12)
    common.assumed.append(_Flag.OUTCOME_UNRECOGNISED)
    if _code(outcome):
        common.attributes["atna_outcome"] = outcome


def _purpose(purposes: tuple[Coded, ...], common: _Common) -> None:
    readable = [p.code for p in purposes if _code(p.code)]
    if len(readable) < len(purposes):
        common.assumed.append(_Flag.PURPOSE_UNREADABLE)
    if readable:
        common.fields["purpose_of_use"] = readable[0]
    if len(readable) > 1:
        common.attributes["purposes_of_use"] = ",".join(readable)[:1024]


def _codes_attributes(message: AuditMessage, origin: AtnaOrigin, common: _Common) -> None:
    attrs = common.attributes
    attrs["origin"] = ORIGIN
    if _code(message.event_id.code):
        attrs["atna_event_id"] = message.event_id.code
    if _label(message.event_id.system):
        attrs["atna_event_id_system"] = message.event_id.system
    types = [t.code for t in message.type_codes if _code(t.code)]
    if types:
        attrs["atna_event_type_codes"] = ",".join(types)[:1024]
    if origin.msgid and _code(origin.msgid.replace("+", "-")):
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
        kind = codes.ID_TYPES.get(obj.id_type.code) or _code(obj.id_type.code)
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
        assumed = [_Flag.PATIENT_ROLE] if role == "assumed" else []
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
    common: _Common, patient: _Patient, index: int, count: int, message: AuditMessage, digest: bytes
) -> dict[str, Any]:
    event_id = uuid.uuid5(EVENT_ID_NAMESPACE, f"{digest.hex()}/{index}")
    assumed = [*common.assumed, *patient.assumed]
    attributes = dict(common.attributes)
    pairs = patient.pairs or ((UNLINKED_SYSTEM, str(event_id)),)
    if not patient.pairs:
        assumed.append(Assumed.PATIENT_UNIDENTIFIED)
    identifiers = [{"system": s, "value": v} for s, v in pairs]
    lifecycle = patient.obj.lifecycle
    # Other objects name what was accessed; other patients are their own events, not data of this one.
    elements = list(dict.fromkeys(["Patient", *(_element(o) for o in message.objects if _patient_role(o) is None)]))
    if len(elements) > 200:
        elements = elements[:200]
        assumed.append(_Flag.DATA_ELEMENTS_CAPPED)
    event_type, known = codes.event_type_of(message.event_id.code, [t.code for t in message.type_codes], lifecycle)
    if not known:
        assumed.append(_Flag.EVENT_TYPE)
    if lifecycle and _code(lifecycle):
        attributes["atna_lifecycle"] = codes.LIFECYCLE.get(lifecycle, lifecycle)
    if count > 1:
        attributes["patient_index"] = index
        attributes["patients_in_message"] = count
    if assumed:
        attributes[ASSUMED_ATTRIBUTE] = ",".join(dict.fromkeys(assumed))
    return {
        "event_id": str(event_id),
        **common.fields,
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
    common = _Common()
    occurred_at = _occurred_at(message.date_time, common)
    observer = _observer(message, common)
    source, destination = _systems(message, observer, common)
    _outcome_and_action(message, common)
    _purpose(message.purposes, common)
    _codes_attributes(message, origin, common)
    dropped = _dropped(message)
    if dropped:
        common.attributes["phi_dropped"] = dropped
    common.fields.update(
        occurred_at=occurred_at,
        source={"system_id": source},
        destination={"system_id": destination},
        actor=_actor(message, observer, common),
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
    return _validated([_event(common, p, i, len(patients), message, document.digest) for i, p in enumerate(patients)])


def _validated(drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        events = [PhiAccess.model_validate(d) for d in drafts]
    except ValidationError as exc:
        where = "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in validation_errors(exc)[:5])
        raise AtnaUnmappable("invalid_event", f"the event built from the message is not valid ({where})") from None
    return [event.to_json() for event in events]
