"""PHI access events from HL7 v2 messages, as an interface engine channel sees them.

``events_from_hl7v2(message, actor=...)`` turns one message (or a batch file)
into one :class:`PhiAccess` per patient. python-hl7 (``hl7``) splits each
message with the encoding characters of its own MSH-1/MSH-2; this module
finds the message boundaries, decodes bytes, reads the fields and decides
what they mean for the audit log.

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
    are batch envelopes; every MSH starts a message, and a batch yields the
    events of all its messages. Escape sequences (``\\F\\ \\S\\ \\T\\ \\R\\
    \\E\\ \\Xhh\\``) are decoded in the values read; highlighting and
    formatting sequences are dropped; anything else is kept as sent.
    python-hl7's own ``unescape`` is not used because it logs the field
    value when a sequence is malformed, and a field value may be PHI.

Systems
    ``source`` is built from MSH-3 (application) and MSH-4 (facility),
    ``destination`` from MSH-5 and MSH-6, as ``APPLICATION@FACILITY`` (or
    the one that is present) from each HD's namespace id, else its universal
    id; characters outside the ``SystemId`` pattern become ``-`` and case is
    kept as sent. An explicit ``source=``/``destination=`` (a SystemRef, a
    mapping or a system id string) overrides.

Patient identifiers
    Every repetition of PID-3, then PID-2 (external id, v2.3) and PID-4
    (alternate id), then, in merge messages, MRG-1, MRG-2 and MRG-4 of the
    same patient group: the prior identifiers belong to the same person, so
    recording them together links them. A repetition whose value is empty
    or the HL7 null ``""`` is skipped, and so is one that cannot be stored
    (over 128 characters, control characters). ``system`` is
    the CX-4 assigning authority:

    * a universal id typed ISO (``urn:oid:`` + OID), UUID (``urn:uuid:``) or
      URI names one identifier space: the system is that alone, as the
      HL7 v2-to-FHIR mapping does, so the same MRN recorded from a FHIR API
      links;
    * a namespace id alone (``MAINHOSP``) is local and one authority often
      issues several kinds of number (MR, AN, PI): the CX-5 type qualifies
      it, ``MAINHOSP^MR``, so that an account number never links to the
      medical record number that happens to have the same digits;
    * no authority: the sending facility (MSH-4, else MSH-3) is taken as the
      assigning authority, qualified by CX-5 as above (``EPIC^MR``);
    * CX-5 ``SS`` without a universal id is the US social security number,
      ``http://hl7.org/fhir/sid/us-ssn``, whatever namespace the site wrote.

    At most 20 distinct identifiers per patient, in that order. A PID with
    no usable identifier, or a message with no PID, raises
    :class:`HL7v2Error`; the one exception is a PIX query (QBP^Q23), whose
    patient is the CX in QPD-3.

Patients
    Each PID starts a patient group that runs to the next PID. One event per
    patient: groups that share an identifier are one patient (a repeated
    PID), groups that do not are different patients (A17 swap, query
    responses, batches). ``data_elements`` are the segment ids before the
    first PID (MSH, EVN, ...) followed by those of the patient's group,
    each once, in order, Z-segments included.

Time
    ``occurred_at`` defaults to MSH-7, the time the message carrying the PHI
    was created (EVN-2 when MSH-7 is empty): EVN-2 dates the clinical event
    recorded, which for a delayed update may be days before the data moved.
    HL7 ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`` is read exactly (fractions
    truncated to microseconds). A timestamp without an offset needs
    ``default_tz=`` (e.g. ``ZoneInfo("America/Chicago")``), else the call
    raises: guessing a zone would shift the audit trail by hours.

Action and attributes
    ``action`` defaults by trigger: new registrations, orders, results,
    bookings, documents, charges and immunisations are ``C``; ADT updates,
    transfers, discharges, cancels, merges and order changes (ORC-1 other
    than NW/SN) are ``U``; A23/A29 and S17/T11 deletions ``D``; queries and
    their responses, and anything unknown, ``R`` (transmit). ``attributes``
    carry ``message_type`` (``ADT^A01``), ``trigger_event``,
    ``message_structure`` (MSH-9.3), ``hl7_version`` and ``processing_id``
    when present, then the caller's ``attributes`` (which win).

Errors name the message, segment, field or repetition and the problem, never
a value: values are identifiers, names and dates of birth.
"""

from __future__ import annotations

import codecs
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Literal

import hl7
from pydantic import ValidationError

from ._event import MAX_IDENTIFIERS, Action, Actor, Identifier, Outcome, PhiAccess, SystemRef
from ._exceptions import AuditError
from ._identifiers import US_SSN, IdentifierPolicy
from ._results import Cause, HelperResult, Refusal, result

__all__ = ["US_SSN", "HL7v2Error", "events_from_hl7v2", "parse_hl7_timestamp", "read_hl7v2"]

_HEADERS = ("MSH", "BHS", "FHS")
_ENVELOPES = ("BHS", "BTS", "FHS", "FTS")
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_NOT_SYSTEM_CHAR = re.compile(r"[^A-Za-z0-9_.:/+~-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TIMESTAMP = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,9}))?)?)?)?)?)?"
    r"(?:([+-])(\d{2}):?(\d{2}))?"
)
_CHARSETS = {"ASCII": "ascii", "ISO IR6": "ascii", "ISO IR100": "latin-1", "ISO IR192": "utf-8"}
_CHARSETS |= {"UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "UNICODE": "utf-8"}
_CHARSETS |= {f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)}

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


class HL7v2Error(AuditError, ValueError):
    """The message cannot be turned into PHI access events.

    The text names the message, segment, field or repetition and the
    problem, never a value from the message; ``cause`` is the
    :class:`~auditsvc_sdk.helpers.Cause` code.
    """

    def __init__(self, message: str, cause: str = Cause.NO_PATIENT) -> None:
        super().__init__(message)
        self.cause = cause


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
    systems and drops placeholders (default :class:`IdentifierPolicy()`).
    ``clock`` gives the time of processing (default: now, UTC). See the
    module docstring for the rules.

    ``event_ids="from-message"`` derives each ``event_id`` from the message
    (UUIDv5 of source, destination, actor, MSH-10, time and the patient's
    place in the batch and message) instead of a new UUIDv7: a channel that
    re-runs the same handler on the same message after a crash then records
    nothing twice (the service answers ``duplicate``).
    """
    if event_ids not in ("new", "from-message"):
        raise ValueError('event_ids must be "new" or "from-message"')
    if not isinstance(message, str | bytes):
        raise TypeError("message must be str or bytes")
    common: dict[str, Any] = {
        "actor": actor if isinstance(actor, Actor) else Actor.model_validate(actor),
        "outcome": Outcome(outcome),
        "event_type": event_type,
        "purpose_of_use": purpose_of_use,
    }
    derive_ids = event_ids == "from-message"
    if occurred_at is not None and occurred_at.tzinfo is None and default_tz is not None:
        occurred_at = occurred_at.replace(tzinfo=default_tz)
    overrides = {
        "action": Action(action) if action is not None else None,
        "source": _system_ref(source),
        "destination": _system_ref(destination),
        "occurred_at": occurred_at,
    }
    try:
        text = _decode(message, encoding) if isinstance(message, bytes) else message
        messages = _split_messages(text)
    except HL7v2Error as exc:
        return HelperResult(refusals=(Refusal(None, exc.cause, str(exc)),))
    events: list[tuple[int, PhiAccess]] = []
    refusals: list[Refusal] = []
    for number, lines in enumerate(messages, 1):
        try:
            produced = _message_events(
                lines, common, overrides, dict(attributes or {}), default_tz, number if derive_ids else None
            )
        except HL7v2Error as exc:
            refusals.append(Refusal(number - 1, exc.cause, str(exc)))
            continue
        events.extend((number - 1, e) for e in produced)
    return result(events, refusals, len(messages))


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


# --- bytes, lines, messages --------------------------------------------------


def _decode(data: bytes, encoding: str | None) -> str:
    boms = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
    for bom, codec in boms:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], encoding or codec
            break
    if encoding is not None:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            raise HL7v2Error(f"the message cannot be decoded as {encoding}", Cause.UNDECODABLE) from None
    declared = _declared_charset(data)
    for codec in (*([declared] if declared else []), "utf-8", "cp1252"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _declared_charset(data: bytes) -> str | None:
    """The Python codec for MSH-18 (its first repetition), read before decoding."""
    start = data.find(b"MSH")
    line = re.split(rb"[\r\n\x1c]", data[start:], maxsplit=1)[0].decode("latin-1") if start >= 0 else ""
    if len(line) < 8:
        return None
    fields = line.split(line[3])
    if len(fields) < 18 or len(fields[1]) < 2:
        return None
    charset = fields[17].split(fields[1][1])[0].split(fields[1][0])[0].strip().upper()
    return _CHARSETS.get(charset)


def _split_messages(text: str) -> list[list[str]]:
    """The segment lines of each message, envelopes dropped, continuations joined."""
    text = text.replace("\x0b", "\r").replace("\x1c", "\r")
    messages: list[list[str]] = []
    separator: str | None = None
    in_message = False  # False before the first MSH and after a batch envelope segment
    for raw in _LINE_BREAK.split(text):
        line = raw.strip().lstrip("\ufeff")  # a BOM may follow the MLLP start byte
        if not line:
            continue
        if line[:3] in _HEADERS:
            if len(line) < 4 or line[3].isalnum() or line[3].isspace():
                raise HL7v2Error(
                    f"{line[:3]}-1 (the field separator) is missing or not a separator character", Cause.BAD_HEADER
                )
            separator = line[3]
        segment_start = separator is not None and _SEGMENT_ID.fullmatch(line[:3]) and line[3:4] in ("", separator)
        if line[:3] == "MSH":
            messages.append([line])
            in_message = True
        elif line[:3] in _ENVELOPES and segment_start:
            in_message = False
        elif not messages:
            raise HL7v2Error(
                "no MSH segment: the input does not start with MSH (or a batch header FHS/BHS)", Cause.NOT_HL7V2
            )
        elif not in_message:
            what = f"a {line[:3]} segment" if segment_start else "text"
            raise HL7v2Error(f"{what} follows a batch header or trailer instead of an MSH", Cause.NOT_IN_MESSAGE)
        elif segment_start:
            messages[-1].append(line)
        else:
            messages[-1][-1] += "\n" + line
    if not messages:
        raise HL7v2Error("no MSH segment: the input is empty or not HL7 v2", Cause.NOT_HL7V2)
    return messages


# --- reading the python-hl7 tree -----------------------------------------------
# python-hl7 nests only as deep as the separators present: a field may be a
# plain string list, a list of Repetitions, and a component a string or a list.


def _field(segment: Any, number: int) -> Any:
    return segment[number] if number < len(segment) else None


def _repetitions(field: Any) -> list[Any]:
    if field is None:
        return []
    if any(isinstance(child, hl7.Repetition) for child in field):
        return list(field)
    return [field]


def _component(repetition: Any, number: int) -> Any:
    if isinstance(repetition, str):
        return repetition if number == 1 else ""
    return repetition[number - 1] if number <= len(repetition) else ""


def _leaf(node: Any, number: int = 1) -> str:
    """Subcomponent ``number`` of a component (or the first leaf under any node)."""
    while not isinstance(node, str):
        if not node:
            return ""
        if isinstance(node, hl7.Component):
            return node[number - 1] if number <= len(node) else ""
        node = node[0]
    return node if number == 1 else ""


class _Reader:
    """Values of one parsed message, escape sequences decoded."""

    def __init__(self, parsed: Any) -> None:
        self.esc: str = parsed.esc
        seps: str = parsed.separators
        self._escapes = {"F": seps[1], "R": seps[2], "S": seps[3], "T": seps[4], "E": self.esc}

    def text(self, node: Any, sub: int = 1) -> str:
        return self.unescape(_leaf(node, sub)).strip()

    def value(self, segment: Any, field: int, component: int = 1, sub: int = 1) -> str:
        reps = _repetitions(_field(segment, field))
        return self.text(_component(reps[0], component), sub) if reps else ""

    def unescape(self, value: str) -> str:
        if not self.esc or self.esc not in value:
            return value
        out: list[str] = []
        i = 0
        while i < len(value):
            end = value.find(self.esc, i + 1) if value[i] == self.esc else -1
            if end < 0:
                out.append(value[i])
                i += 1
                continue
            code = value[i + 1 : end]
            if code in self._escapes:
                out.append(self._escapes[code])
            elif code[:1] == "X" and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", code[1:]):
                raw = bytes.fromhex(code[1:])
                try:
                    out.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    out.append(raw.decode("latin-1"))
            elif not (code in ("H", "N", "") or code[:1] in (".", "C", "M", "Z")):
                out.append(value[i : end + 1])  # not an escape sequence: keep as sent
            i = end + 1
        return "".join(out)


def _parse(lines: list[str]) -> Any:
    try:
        return hl7.parse("\r".join(lines))
    except Exception:
        # The library's messages quote segment text, which may be PHI.
        raise HL7v2Error("the MSH segment cannot be parsed", Cause.BAD_HEADER) from None


# --- one message ----------------------------------------------------------------


def _message_events(
    lines: list[str],
    common: dict[str, Any],
    overrides: dict[str, Any],
    caller_attributes: dict[str, str | int | bool],
    default_tz: tzinfo | None,
    derive_ids_as: int | None = None,
) -> list[PhiAccess]:
    parsed = _parse(lines)
    r = _Reader(parsed)
    msh = parsed[0]
    code, trigger, structure = (r.value(msh, 9, c) for c in (1, 2, 3))
    message_id = r.value(msh, 10) or None
    if message_id is not None and len(message_id) > 199:
        raise HL7v2Error("MSH-10 (message control id) is longer than 199 characters")
    source = overrides["source"] or _system_from_msh(r, msh, 3, "source")
    destination = overrides["destination"] or _system_from_msh(r, msh, 5, "destination")
    occurred_at = overrides["occurred_at"] or _message_time(r, parsed, default_tz)
    action = overrides["action"] or _default_action(r, parsed, code, trigger)
    derived = {
        "message_type": f"{code}^{trigger}" if trigger else code,
        "trigger_event": trigger,
        "message_structure": structure,
        "hl7_version": r.value(msh, 12),
        "processing_id": r.value(msh, 11),
    }
    attributes: dict[str, str | int | bool] = {k: v[:64] for k, v in derived.items() if v}
    attributes.update(caller_attributes)

    if derive_ids_as is not None and message_id is None:
        raise HL7v2Error('event_ids="from-message" needs MSH-10 (message control id), and it is empty')
    events = []
    for index, (identifiers, data_elements) in enumerate(_patients(r, parsed, code, trigger)):
        ids = (
            {
                "event_id": _derived_event_id(
                    source, destination, common["actor"], message_id, occurred_at, f"{derive_ids_as}.{index}"
                )
            }
            if derive_ids_as is not None
            else {}
        )
        try:
            events.append(
                PhiAccess(
                    **ids,
                    occurred_at=occurred_at,
                    action=action,
                    patient={"identifiers": identifiers[:MAX_IDENTIFIERS]},
                    data_elements=data_elements,
                    source=source,
                    destination=destination,
                    message_id=message_id,
                    attributes=attributes,
                    **common,
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
    source: Any, destination: Any, actor: Actor, message_id: str | None, occurred_at: Any, place: str
) -> uuid.UUID:
    def system_id(ref: Any) -> str:
        return str(ref.system_id if isinstance(ref, SystemRef) else ref["system_id"])

    when = occurred_at.isoformat() if isinstance(occurred_at, datetime) else str(occurred_at)
    parts = (system_id(source), system_id(destination), actor.id, message_id or "", when, place)
    return uuid.uuid5(_EVENT_ID_NAMESPACE, "\x1f".join(parts))


def _segments(parsed: Any) -> list[tuple[str, Any]]:
    return [(_leaf(segment[0]), segment) for segment in parsed]


def _patients(r: _Reader, parsed: Any, code: str, trigger: str) -> list[tuple[list[Identifier], list[str]]]:
    segments = _segments(parsed)
    header: list[str] = []
    groups: list[tuple[list[Identifier], list[str]]] = []
    pid_count = 0
    for name, segment in segments:
        if name == "PID":
            pid_count += 1
            groups.append(([], ["PID"]))
            found = _identifiers(r, parsed, segment, (3, 2, 4))
            if not found:
                raise HL7v2Error(
                    f"PID segment {pid_count}: no usable patient identifier "
                    "(PID-3, PID-2 and PID-4 are empty, null or too long)"
                )
            groups[-1][0].extend(found)
        elif groups:
            groups[-1][1].append(name)
            if name == "MRG":
                groups[-1][0].extend(_identifiers(r, parsed, segment, (1, 2, 4)))
        else:
            header.append(name)
    if not groups and code == "QBP" and trigger == "Q23":
        qpd = next((segment for name, segment in segments if name == "QPD"), None)
        found = _identifiers(r, parsed, qpd, (3,)) if qpd is not None else []
        if not found:
            raise HL7v2Error("PIX query (QBP^Q23) without a usable patient identifier in QPD-3")
        groups.append((found, []))
    if not groups:
        raise HL7v2Error("no PID segment: the message names no patient")

    patients: list[tuple[list[Identifier], list[str]]] = []
    for identifiers, elements in groups:
        keys = {(i.system, i.value) for i in identifiers}
        same = [p for p in patients if keys & {(i.system, i.value) for i in p[0]}]
        for p in same:
            patients.remove(p)
            identifiers = p[0] + identifiers
            elements = p[1] + elements
        patients.append((identifiers, elements))
    return [(_distinct(ids), list(dict.fromkeys(header + elements))) for ids, elements in patients]


def _distinct(identifiers: list[Identifier]) -> list[Identifier]:
    first: dict[tuple[str, str], Identifier] = {}
    for ident in identifiers:
        first.setdefault((ident.system, ident.value), ident)
    return list(first.values())


def _identifiers(r: _Reader, parsed: Any, segment: Any, fields: tuple[int, ...]) -> list[Identifier]:
    found: list[Identifier] = []
    for number in fields:
        for rep in _repetitions(_field(segment, number)):
            value = r.text(_component(rep, 1))
            if not value or value == '""' or len(value) > 128 or _CONTROL.search(value):
                continue
            system = _identifier_system(r, parsed, _component(rep, 4), r.text(_component(rep, 5)).upper())
            if system is not None and len(system) <= 256:
                found.append(Identifier(system=system, value=value))
    return found


def _hd(r: _Reader, node: Any, *, in_component: bool) -> tuple[str, str, str]:
    """(namespace id, universal id, universal id type) of an HD: its components
    when it is a whole field (MSH-3), its subcomponents inside a component (CX-4)."""
    if in_component:
        return r.text(node, 1), r.text(node, 2), r.text(node, 3).upper()
    reps = _repetitions(node)
    rep = reps[0] if reps else ""
    return r.text(_component(rep, 1)), r.text(_component(rep, 2)), r.text(_component(rep, 3)).upper()


def _authority(hd: tuple[str, str, str]) -> tuple[str | None, bool]:
    """(the HD as an identifier system, whether it is a universal id)."""
    namespace, universal, kind = hd
    if universal and kind == "ISO" and _OID.fullmatch(universal.removeprefix("urn:oid:")):
        return "urn:oid:" + universal.removeprefix("urn:oid:"), True
    if universal and kind == "UUID":
        return "urn:uuid:" + universal.lower().removeprefix("urn:uuid:"), True
    if universal and kind in ("URI", "URL"):
        return universal, True
    return (namespace or universal or None), False


def _identifier_system(r: _Reader, parsed: Any, cx4: Any, id_type: str) -> str | None:
    authority, universal = _authority(_hd(r, cx4, in_component=True))
    if universal:
        return authority
    if id_type == "SS":
        return US_SSN
    if authority is None:  # no CX-4: the sending facility, else application, assigned it
        msh = parsed[0]
        for number in (4, 3):
            authority = _authority(_hd(r, _field(msh, number), in_component=False))[0]
            if authority is not None:
                break
        else:
            return None
    return f"{authority}^{id_type}" if id_type else authority


def _system_from_msh(r: _Reader, msh: Any, first: int, role: str) -> SystemRef:
    names = []
    for number in (first, first + 1):
        namespace, universal, _kind = _hd(r, _field(msh, number), in_component=False)
        name = _NOT_SYSTEM_CHAR.sub("-", namespace or universal)
        name = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", name)
        if name:
            names.append(name)
    if not names:
        raise HL7v2Error(f"MSH-{first} and MSH-{first + 1} are empty: pass {role}= to name the system")
    return SystemRef(system_id="@".join(names)[:128])


def _system_ref(value: SystemRef | Mapping[str, Any] | str | None) -> SystemRef | None:
    if value is None or isinstance(value, SystemRef):
        return value
    if isinstance(value, str):
        return SystemRef(system_id=value)
    return SystemRef.model_validate(value)


def _message_time(r: _Reader, parsed: Any, default_tz: tzinfo | None) -> datetime:
    msh = parsed[0]
    where, value = "MSH-7", r.value(msh, 7)
    if not value:
        evn = next((segment for name, segment in _segments(parsed) if name == "EVN"), None)
        where, value = "EVN-2", r.value(evn, 2) if evn is not None else ""
    if not value:
        raise HL7v2Error("MSH-7 is empty and there is no EVN-2: pass occurred_at=")
    return parse_hl7_timestamp(value, default_tz, where)


def parse_hl7_timestamp(value: str, default_tz: tzinfo | None = None, where: str = "timestamp") -> datetime:
    """An HL7 v2 ``DTM``/``TS`` value ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`` as an aware datetime.

    The fraction is truncated to microseconds. Without an offset the time is
    read in ``default_tz``; with neither, :class:`HL7v2Error` is raised.
    """
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise HL7v2Error(f"{where} is not an HL7 timestamp YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    if sign is not None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= timedelta(hours=24) or int(off_m) >= 60:
            raise HL7v2Error(f"{where} has an out-of-range UTC offset")
        tz: tzinfo = timezone(-offset if sign == "-" else offset)
    elif default_tz is not None:
        tz = default_tz
    else:
        raise HL7v2Error(f"{where} has no UTC offset: pass default_tz= (the sender's time zone) or occurred_at=")
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        raise HL7v2Error(f"{where} is not a valid date and time") from None


def _default_action(r: _Reader, parsed: Any, code: str, trigger: str) -> Action:
    if code in _ORDER_CODES:
        orc = next((segment for name, segment in _segments(parsed) if name == "ORC"), None)
        control = r.value(orc, 1).upper() if orc is not None else ""
        return Action.CREATE if control in ("", "NW", "SN") else Action.UPDATE
    return Action(_ACTION_BY_TRIGGER.get(trigger) or _ACTION_BY_CODE.get(code, "R"))
