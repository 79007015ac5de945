"""PHI access events from HL7 v2 messages, as an interface engine channel sees them.

``read_hl7v2(message, actor=...)`` turns one message, a batch or a whole file
into one :class:`PhiAccess` per patient of each message, best effort and
never silent (IHE BALP: record what is known rather than nothing): a message
that names a patient always yields an event for that patient, flagged in
``attributes["assumed"]`` with what had to be assumed (see
:class:`~auditsvc_sdk.helpers.Assumed`); only a message that names no
patient, or cannot be read, is refused, and reported as a
:class:`~auditsvc_sdk.helpers.Refusal` while the other messages still yield
their events. ``events_from_hl7v2`` is the older list-returning form.
python-hl7 (``hl7``) splits each message with the encoding characters of its
own MSH-1/MSH-2; ``_hl7v2_text`` reads the text, ``_hl7v2_patients`` finds
the patients, this module decides what they mean for the audit log.

Decisions (where the HL7 standard or the issue left a choice):

Input
    ``bytes`` are decoded with ``encoding=`` when given, else by a leading
    BOM, else by the charset MSH-18 declares (``ASCII``, ``8859/n``,
    ``UNICODE UTF-8``, ``ISO IR6/IR100/IR192``), falling back to UTF-8, then
    cp1252, then latin-1: sites often declare nothing, or declare ASCII and
    send accented names. MLLP framing bytes (0x0b, 0x1c) and a BOM are
    removed; segments may end in ``\\r``, ``\\n`` or ``\\r\\n``; blank lines
    and surrounding white space are dropped. A line that does not start
    with a segment id and the message's field separator continues the
    segment before it (a raw line break inside OBX-5 text). FHS/BHS/BTS/FTS
    are batch envelopes; every MSH starts a message. Text outside any
    message is one refused unit (``not_in_message``); an MSH without a usable
    field separator refuses its message (``bad_header``); an MSH whose
    encoding characters python-hl7 cannot use is read with ``^~\\&``.

Systems
    ``source`` is built from MSH-3 (application) and MSH-4 (facility),
    ``destination`` from MSH-5 and MSH-6, as ``APPLICATION@FACILITY`` (or
    the one that is present) from each HD's namespace id, else its universal
    id; characters outside the ``SystemId`` pattern become ``-`` and case is
    kept as sent. An explicit ``source=``/``destination=`` (a SystemRef, a
    mapping or a system id string) overrides. Both empty and no override:
    ``unknown``, flagged ``source_unknown`` / ``destination_unknown``.

Patient identifiers
    Every repetition of PID-3, then PID-2 (external id, v2.3) and PID-4
    (alternate id), PID-19 (SSN) and PID-20 (driver's licence), then, in
    merge messages, MRG-1, MRG-2 and MRG-4 of the same patient group: the
    prior identifiers belong to the same person, so recording them together
    links them. A repetition whose value is empty or the HL7 null ``""`` is
    skipped; one that cannot be stored (over 128 characters, control
    characters) or is a placeholder (``REDACTED``, ``000000000``: see
    :class:`~auditsvc_sdk.helpers.IdentifierPolicy`) is left out and flagged.
    ``system`` comes from the CX-4 assigning authority, then goes through the
    identifier policy's table of canonical systems:

    * a universal id typed ISO (``urn:oid:`` + OID), UUID (``urn:uuid:``) or
      URI names one identifier space: the system is that alone, as the
      HL7 v2-to-FHIR mapping does, so the same MRN recorded from a FHIR API
      links;
    * a CX-5 type that names a national space on its own (``SS``, ``NPI``,
      ``MC``) gives that space's canonical system, whatever namespace the
      site wrote; ``DL`` with a US state code as authority gives that state's
      DMV OID;
    * a namespace id the table knows (``SSN``) is that system; any other
      (``MAINHOSP``) is local and one authority often issues several kinds
      of number (MR, AN, PI): the CX-5 type qualifies it, ``MAINHOSP^MR``,
      so that an account number never links to the medical record number
      that happens to have the same digits;
    * no authority: the channel's ``default_authority=`` (a namespace, OID or
      URI), else the sending facility (MSH-4, else MSH-3), flagged
      ``authority_from_sender``, else the caller's ``source=``, flagged
      ``authority_from_source``, qualified by CX-5 as above; with none of
      these the identifier is left out (``authority_unknown``).

    At most 20 distinct identifiers per patient, in that order. A patient
    named (a PID with any content, a query's subject) but left with no
    identifier gets one that links nothing, ``urn:auditsvc:unlinked`` with
    the event's own id as value, flagged ``patient_unidentified``: the
    access is on the record, and no one else's record is touched.

Patients
    Each PID with content starts a patient group that runs to the next one;
    an empty ``PID|`` (some engines send one before the real PID) names no
    one and is passed over. One event per patient: groups that share an
    identifier are one patient (a repeated PID), groups that do not are
    different patients (A17 swap, query responses, batches). A message with
    no such PID names its patient, if any, in its query: QPD-3 of a QBP or
    RSP (a CX list, as in PIX Q23 and immunization Q11 queries, or QIP pairs
    ``@PID.3.1^...``, as in PDQ Q22), QPD-4..8 of an immunization query
    (name, birth date), QRD-8 (who subject filter) of an original-mode query
    (QRY, VXQ, ORF...). ``data_elements`` are the segment ids before the
    first PID (MSH, EVN, ...) followed by those of the patient's group, each
    once, in order, Z-segments included (all segments for a query's patient).

Time
    ``occurred_at`` defaults to MSH-7, the time the message carrying the PHI
    was created; when MSH-7 is empty or unusable, EVN-2 (flagged
    ``time_from_evn``: it dates the clinical event recorded, which for a
    delayed update may be days before the data moved); when neither is
    usable, the time of processing (``clock=``, flagged
    ``time_of_processing``): the data moved, so the movement is recorded.
    HL7 ``YYYY[MM[DD[HH[MM[SS[[.]S+]]]]]][+/-ZZZZ]`` is read exactly, the
    fraction with or without its dot (truncated to microseconds). A
    timestamp without an offset is read in ``default_tz=`` (e.g.
    ``ZoneInfo("America/Chicago")``): configure it, since most senders omit
    the offset; without it the host's local zone is used and flagged
    ``local_time_zone``.

Action and attributes
    ``action`` defaults by trigger: new registrations, orders, results,
    bookings, documents, charges and immunisations are ``C``; ADT updates,
    transfers, discharges, cancels, merges and order changes (ORC-1 other
    than NW/SN) are ``U``; A23/A29 and S17/T11 deletions ``D``; queries and
    their responses, and anything unknown, ``R`` (transmit). ``attributes``
    carry ``message_type`` (``ADT^A01``), ``trigger_event``,
    ``message_structure`` (MSH-9.3), ``hl7_version`` and ``processing_id``
    when present, then the caller's ``attributes`` (which win), then
    ``assumed`` when anything was.

Refusals and errors name the message, segment, field or repetition and the
problem, never a value: values are identifiers, names and dates of birth.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from pydantic import ValidationError

from ._event import MAX_DATA_ELEMENTS, Action, Actor, Outcome, PhiAccess, SystemRef, new_event_id
from ._hl7v2_patients import IdentifierContext, message_patients, system_from_msh
from ._hl7v2_text import HL7v2Error, Reader, decode, parse, parse_hl7_timestamp, read_timestamp, split_units
from ._identifiers import DEFAULT_POLICY, UNLINKED_SYSTEM, US_SSN, IdentifierPolicy
from ._results import Assumed, Cause, HelperResult, Refusal, event_attributes, result

__all__ = ["US_SSN", "HL7v2Error", "events_from_hl7v2", "parse_hl7_timestamp", "read_hl7v2"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
UNKNOWN_SYSTEM = "unknown"

# Default actions by trigger event, then by message code; anything else is "R" (transmit).
_ACTION_BY_TRIGGER = {
    **dict.fromkeys(("A01", "A04", "A05", "A14", "A28"), "C"),
    **dict.fromkeys(("A23", "A29", "S17", "T11"), "D"),
    **dict.fromkeys(("A19", "Q21", "Q22", "Q23", "K21", "K22", "K23"), "R"),
    **dict.fromkeys(("S12", "T01", "T02", "P01", "P03", "P11", "V04"), "C"),
}
_ACTION_BY_CODE = {
    **dict.fromkeys(("ADT", "SIU", "MDM", "BAR"), "U"),
    **dict.fromkeys(("ORU", "OUL", "DFT", "VXU", "RAS", "RDS", "RGV", "PPR"), "C"),
}
_ORDER_CODES = ("ORM", "OMG", "OML", "OMP", "OMI", "OMB", "OMD", "OMN", "OMS", "RDE", "RRE")


@dataclass(frozen=True)
class _Channel:
    """The caller's settings, fixed for every message of one input."""

    common: Mapping[str, Any]
    action: Action | None
    source: SystemRef | None
    destination: SystemRef | None
    occurred_at: datetime | None
    attributes: Mapping[str, str | int | bool]
    default_tz: tzinfo | None
    default_authority: str | None
    policy: IdentifierPolicy
    clock: Callable[[], datetime]
    derive_ids: bool


def read_hl7v2(
    message: str | bytes,
    *,
    actor: Actor | Mapping[str, Any],
    action: Action | str | None = None,
    purpose_of_use: str | None = None,
    occurred_at: datetime | None = None,
    default_tz: tzinfo | None = None,
    source: SystemRef | Mapping[str, Any] | str | None = None,
    destination: SystemRef | Mapping[str, Any] | str | None = None,
    default_authority: str | None = None,
    outcome: Outcome | int = Outcome.SUCCESS,
    attributes: Mapping[str, str | int | bool] | None = None,
    event_type: str = "hl7v2-message",
    encoding: str | None = None,
    event_ids: Literal["new", "from-message"] = "new",
    identifier_policy: IdentifierPolicy | None = None,
    clock: Callable[[], datetime] | None = None,
) -> HelperResult:
    """PHI access events of an HL7 v2 message, batch or file, best effort: one per patient of each message.

    Every message that names a patient yields an event for each of its
    patients; what had to be assumed is flagged in ``attributes["assumed"]``
    (:class:`Assumed`). Messages that name no patient, or cannot be read,
    are listed in ``refusals`` (:class:`Refusal`, with a :class:`Cause`
    code), the others still yield their events. Never raises for the
    content of ``message``; raises ``TypeError``/``ValueError`` for bad
    arguments.

    ``actor`` is who moves the message (the channel, e.g. ``{"id":
    "mirth/ADT-IN", "type": "system"}``). The other keyword arguments
    override what is read from the message: ``source``/``destination``
    (default MSH-3/4 and MSH-5/6), ``occurred_at`` (default MSH-7, read in
    ``default_tz`` when it has no offset), ``action`` (default by trigger).
    ``default_authority`` is the assigning authority of identifiers without
    CX-4 (default: the sending facility). ``encoding`` decodes ``bytes``
    instead of MSH-18. ``identifier_policy`` canonicalises identifier
    systems and leaves placeholders out (default ``IdentifierPolicy()``).
    ``clock`` gives the time of processing, used when the message carries
    no usable time (default: now, UTC). See the module docstring for the
    rules.

    ``event_ids="from-message"`` derives each ``event_id`` from the message
    (UUIDv5 of source, destination, actor, MSH-10, time and the patient's
    place in the batch and message; a hash of the message when MSH-10 is
    empty) instead of a new UUIDv7: a channel that re-runs the same handler
    on the same message after a crash then records nothing twice (the
    service answers ``duplicate``). Use it when a re-run is a retry, not a
    new disclosure.
    """
    if event_ids not in ("new", "from-message"):
        raise ValueError('event_ids must be "new" or "from-message"')
    if not isinstance(message, str | bytes):
        raise TypeError("message must be str or bytes")
    if occurred_at is not None and occurred_at.tzinfo is None and default_tz is not None:
        occurred_at = occurred_at.replace(tzinfo=default_tz)
    channel = _Channel(
        common={
            "actor": actor if isinstance(actor, Actor) else Actor.model_validate(actor),
            "outcome": Outcome(outcome),
            "event_type": event_type,
            "purpose_of_use": purpose_of_use,
        },
        action=Action(action) if action is not None else None,
        source=_system_ref(source),
        destination=_system_ref(destination),
        occurred_at=occurred_at,
        attributes=dict(attributes or {}),
        default_tz=default_tz,
        default_authority=default_authority,
        policy=identifier_policy if identifier_policy is not None else DEFAULT_POLICY,
        clock=clock if clock is not None else (lambda: datetime.now(UTC)),
        derive_ids=event_ids == "from-message",
    )
    try:
        text = decode(message, encoding) if isinstance(message, bytes) else message
        units = split_units(text)
    except HL7v2Error as exc:
        return HelperResult(refusals=(Refusal(None, exc.cause, str(exc)),))
    events: list[tuple[int, PhiAccess]] = []
    refusals: list[Refusal] = []
    for index, unit in enumerate(units):
        try:
            if unit.refusal is not None:
                raise unit.refusal
            produced = _message_events(unit.lines, channel, index + 1)
        except HL7v2Error as exc:
            refusals.append(Refusal(index, exc.cause, str(exc)))
            continue
        events.extend((index, e) for e in produced)
    return result(events, refusals, len(units))


def events_from_hl7v2(
    message: str | bytes,
    *,
    actor: Actor | Mapping[str, Any],
    action: Action | str | None = None,
    purpose_of_use: str | None = None,
    occurred_at: datetime | None = None,
    default_tz: tzinfo | None = None,
    source: SystemRef | Mapping[str, Any] | str | None = None,
    destination: SystemRef | Mapping[str, Any] | str | None = None,
    default_authority: str | None = None,
    outcome: Outcome | int = Outcome.SUCCESS,
    attributes: Mapping[str, str | int | bool] | None = None,
    event_type: str = "hl7v2-message",
    encoding: str | None = None,
    event_ids: Literal["new", "from-message"] = "new",
    identifier_policy: IdentifierPolicy | None = None,
    clock: Callable[[], datetime] | None = None,
) -> list[PhiAccess]:
    """The events of :func:`read_hl7v2`, raising :class:`HL7v2Error` when the input yields none.

    Kept for existing callers: when some messages of a batch are refused
    and others are not, the events of the others are returned and the
    refusals are not reported; use :func:`read_hl7v2` to see them.
    """
    found = read_hl7v2(
        message,
        actor=actor,
        action=action,
        purpose_of_use=purpose_of_use,
        occurred_at=occurred_at,
        default_tz=default_tz,
        source=source,
        destination=destination,
        default_authority=default_authority,
        outcome=outcome,
        attributes=attributes,
        event_type=event_type,
        encoding=encoding,
        event_ids=event_ids,
        identifier_policy=identifier_policy,
        clock=clock,
    )
    if not found.events and found.refusals:
        first = found.refusals[0]
        prefix = f"message {first.index + 1} of {found.units}: " if first.index is not None and found.units > 1 else ""
        raise HL7v2Error(prefix + first.message, first.cause)
    return list(found.events)


# --- one message -------------------------------------------------------------------------------------


def _message_events(lines: list[str], channel: _Channel, number: int) -> list[PhiAccess]:
    r = Reader(parse(lines))
    msh = r.msh
    assumed: list[str] = []
    code, trigger, structure = (r.value(msh, 9, c) for c in (1, 2, 3))
    message_id = r.value(msh, 10) or None
    if message_id is not None and (len(message_id) > 199 or _CONTROL.search(message_id)):
        message_id = None
        assumed.append(Assumed.MESSAGE_ID_UNUSABLE)
    source = channel.source or _msh_system(r, 3, Assumed.SOURCE_UNKNOWN, assumed)
    destination = channel.destination or _msh_system(r, 5, Assumed.DESTINATION_UNKNOWN, assumed)
    if channel.occurred_at is not None:
        occurred_at, time_text = channel.occurred_at, channel.occurred_at.isoformat()
    else:
        occurred_at, time_text = _message_time(r, channel, assumed)
    action = channel.action or _default_action(r, code, trigger)
    derived = {
        "message_type": f"{code}^{trigger}" if trigger else code,
        "trigger_event": trigger,
        "message_structure": structure,
        "hl7_version": r.value(msh, 12),
        "processing_id": r.value(msh, 11),
    }
    attributes: dict[str, str | int | bool] = {k: _CONTROL.sub("", v)[:64] for k, v in derived.items() if v}

    ctx = IdentifierContext(
        r, channel.policy, channel.default_authority, channel.source.system_id if channel.source else None
    )
    id_basis = message_id
    if channel.derive_ids and message_id is None:
        # Re-runs of one message hash the same, however it was framed.
        id_basis = "sha256:" + hashlib.sha256("\r".join(lines).encode("utf-8", "surrogatepass")).hexdigest()
        assumed.append(Assumed.EVENT_ID_FROM_CONTENT)
    events = []
    for index, patient in enumerate(message_patients(ctx, code, trigger)):
        flags = assumed + patient.assumed
        if channel.derive_ids:
            place = f"{number}.{index}"
            event_id = _derived_event_id(source, destination, channel.common["actor"], id_basis, time_text, place)
        else:
            event_id = new_event_id()
        identifiers = patient.identifiers
        if not identifiers:
            identifiers = [(UNLINKED_SYSTEM, str(event_id))]
            flags.append(Assumed.PATIENT_UNIDENTIFIED)
        try:
            events.append(
                PhiAccess(
                    event_id=event_id,
                    occurred_at=occurred_at,
                    action=action,
                    patient={"identifiers": [{"system": s, "value": v} for s, v in identifiers]},
                    data_elements=patient.elements[:MAX_DATA_ELEMENTS],
                    source=source,
                    destination=destination,
                    message_id=message_id,
                    attributes=event_attributes(attributes, channel.attributes, flags),
                    **channel.common,
                )
            )
        except ValidationError as exc:
            # Only the location and the reason: pydantic's text would quote the input.
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise HL7v2Error(f"the event built from the message is invalid: {reasons}", Cause.INVALID_EVENT) from None
    return events


# Fixed for ever: changing it would give a re-run message new ids.
_EVENT_ID_NAMESPACE = uuid.UUID("4f0c6a3e-9a51-5b8e-8d0e-6f1f2c1e7a01")


def _derived_event_id(
    source: SystemRef, destination: SystemRef, actor: Actor, message_id: str | None, when: str, place: str
) -> uuid.UUID:
    parts = (source.system_id, destination.system_id, actor.id, message_id or "", when, place)
    return uuid.uuid5(_EVENT_ID_NAMESPACE, "\x1f".join(parts))


def _msh_system(r: Reader, first: int, flag: str, assumed: list[str]) -> SystemRef:
    name = system_from_msh(r, first)
    if name is None:
        assumed.append(flag)
        return SystemRef(system_id=UNKNOWN_SYSTEM)
    return SystemRef(system_id=name)


def _system_ref(value: SystemRef | Mapping[str, Any] | str | None) -> SystemRef | None:
    if value is None or isinstance(value, SystemRef):
        return value
    if isinstance(value, str):
        return SystemRef(system_id=value)
    return SystemRef.model_validate(value)


def _message_time(r: Reader, channel: _Channel, assumed: list[str]) -> tuple[datetime, str]:
    """(occurred_at, the text event ids derive from): MSH-7, else EVN-2, else the time of processing."""
    evn = r.first("EVN")
    for value, flag in ((r.value(r.msh, 7), None), (r.value(evn, 2) if evn is not None else "", Assumed.TIME_FROM_EVN)):
        found = read_timestamp(value, channel.default_tz) if value else None
        if found is None:
            continue
        when, has_offset = found
        if flag is not None:
            assumed.append(flag)
        if not has_offset and channel.default_tz is None:
            assumed.append(Assumed.LOCAL_TIME_ZONE)
        return when, when.isoformat()
    assumed.append(Assumed.TIME_OF_PROCESSING)
    # Not the clock's time: a re-run of the message must derive the same event ids.
    return channel.clock(), ""


def _default_action(r: Reader, code: str, trigger: str) -> Action:
    if code in _ORDER_CODES:
        orc = r.first("ORC")
        control = r.value(orc, 1).upper() if orc is not None else ""
        return Action.CREATE if control in ("", "NW", "SN") else Action.UPDATE
    return Action(_ACTION_BY_TRIGGER.get(trigger) or _ACTION_BY_CODE.get(code, "R"))
