"""What the HL7 v2 and FHIR helpers return: events, refusals and assumptions.

The helpers follow IHE BALP's rule for an audit trail, "best effort, never
silent": every input that names a patient yields an event for that patient,
and what had to be assumed to build it is flagged on the event; only input
that names no patient at all, or that cannot be read, is refused, and each
refusal says why in words that quote nothing from the input.

A *unit* is what ``units`` counts and ``event_units`` points at: one
message of an HL7 v2 input (a batch or file holds many), the whole of a FHIR
input. A refusal's ``index`` is its message (HL7 v2), or the top-level Bundle
entry or Parameters resource it concerns (FHIR), ``None`` for the whole input.

Flags live in the event's ``attributes`` (DESIGN.md: a flat map of at most
32 keys whose values are strings, integers or booleans, so not lists):
``attributes["assumed"]`` is the comma-separated list of :class:`Assumed`
codes, in the order they were met, absent when nothing was assumed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ._event import MAX_ATTRIBUTES, PhiAccess

__all__ = ["ASSUMED_ATTRIBUTE", "Assumed", "Cause", "HelperResult", "Refusal", "assumed_codes"]

ASSUMED_ATTRIBUTE = "assumed"


class Cause:
    """Why a unit was refused: the ``cause`` of a :class:`Refusal` (stable codes; text may change)."""

    # The whole input
    NOT_HL7V2 = "not_hl7v2"  # no MSH segment anywhere: empty, or not HL7 v2
    UNDECODABLE = "undecodable"  # bytes that the given encoding= cannot decode
    NOT_JSON = "not_json"  # FHIR input that is not JSON text
    NOT_FHIR = "not_fhir"  # JSON that is not a FHIR resource (no resourceType, not an object)
    # One unit
    NOT_IN_MESSAGE = "not_in_message"  # HL7 v2 segments before the first MSH or after a batch trailer
    BAD_HEADER = "bad_header"  # MSH-1/MSH-2 (separators) missing or unusable: the message cannot be split
    NO_PATIENT = "no_patient"  # the unit names no patient (an ACK, a master file update, a CapabilityStatement)
    BAD_ENTRY = "bad_entry"  # FHIR: the entry or resource is not usable (not an object, no resourceType)
    INVALID_EVENT = "invalid_event"  # the event built fails validation (e.g. too many caller attributes)

    ALL = frozenset(
        {NOT_HL7V2, UNDECODABLE, NOT_JSON, NOT_FHIR, NOT_IN_MESSAGE, BAD_HEADER, NO_PATIENT, BAD_ENTRY, INVALID_EVENT}
    )


class Assumed:
    """What a helper had to assume to build an event: the codes in ``attributes["assumed"]``."""

    # Time (HL7 v2)
    TIME_OF_PROCESSING = "time_of_processing"  # no usable MSH-7 or EVN-2: occurred_at is when the helper ran
    TIME_FROM_EVN = "time_from_evn"  # MSH-7 empty or unusable: EVN-2 (when the event happened) was used
    LOCAL_TIME_ZONE = "local_time_zone"  # a time without UTC offset and no default_tz: read in the host's zone
    # Systems (HL7 v2)
    SOURCE_UNKNOWN = "source_unknown"  # MSH-3/MSH-4 empty and no source=: source is "unknown"
    DESTINATION_UNKNOWN = "destination_unknown"  # MSH-5/MSH-6 empty and no destination=
    # Identifiers
    AUTHORITY_FROM_SENDER = "authority_from_sender"  # no CX-4: the sending facility/application assigned it
    AUTHORITY_FROM_SOURCE = "authority_from_source"  # no CX-4 nor MSH-3/4: the caller's source= assigned it
    AUTHORITY_UNKNOWN = "authority_unknown"  # no authority anywhere: that identifier was left out
    PLACEHOLDER_IDENTIFIER = "placeholder_identifier"  # a placeholder value (REDACTED, 000000000) was left out
    IDENTIFIER_WITHOUT_VALUE = "identifier_without_value"  # FHIR: a masked/absent identifier value was skipped
    UNUSABLE_IDENTIFIER = "unusable_identifier"  # an identifier that could not be stored was left out
    PATIENT_UNIDENTIFIED = "patient_unidentified"  # no linkable identifier: an unlinked one stands in
    BASE_FROM_SOURCE = "base_from_source"  # FHIR: no server base known: the source system qualifies logical ids
    REFERENCE_UNRESOLVED = "reference_unresolved"  # FHIR: a patient reference that resolves to nothing known
    # Message identity (HL7 v2)
    MESSAGE_ID_UNUSABLE = "message_id_unusable"  # MSH-10 longer than 199 characters: left out
    EVENT_ID_FROM_CONTENT = "event_id_from_content"  # event_ids="from-message" without MSH-10: content hash


@dataclass(frozen=True)
class Refusal:
    """One unit that yielded no event, and why.

    ``index`` is the 0-based position of what was refused: the message in an
    HL7 v2 input, the top-level entry of a FHIR Bundle (or resource of a
    Parameters); ``None`` when the refusal concerns the whole input. ``cause`` is a :class:`Cause` code; ``where`` the
    segment/field (``PID-3``) or JSON path (``entry[3].resource.subject``),
    possibly empty; ``message`` a sentence for people. Neither quotes a
    value from the input.
    """

    index: int | None
    cause: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        where = f" at {self.where}" if self.where else ""
        unit = "input" if self.index is None else f"unit {self.index}"
        return f"{unit}{where}: {self.message} [{self.cause}]"


def assumed_codes(event: PhiAccess) -> list[str]:
    """The :class:`Assumed` codes flagged on an event built by a helper (empty when none)."""
    value = event.attributes.get(ASSUMED_ATTRIBUTE)
    return [code for code in value.split(",") if code] if isinstance(value, str) else []


@dataclass(frozen=True)
class HelperResult:
    """Events and refusals from one input (an HL7 v2 message, batch or file; a FHIR resource or Bundle).

    ``events`` are in input order; ``event_units[i]`` is the unit
    ``events[i]`` came from. ``units`` is how many units the input held (0
    when an HL7 v2 input itself was refused). For FHIR the unit is the
    whole input (``units`` 1, every ``event_units`` 0), and a Bundle whose
    other entries yield events may still list refused entries.
    """

    events: tuple[PhiAccess, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    units: int = 0
    event_units: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.event_units) != len(self.events):
            raise ValueError("event_units must give the unit of every event")

    @property
    def ok(self) -> bool:
        """True when nothing was refused."""
        return not self.refusals

    @property
    def units_with_events(self) -> int:
        return len(set(self.event_units))

    def refusal_causes(self) -> dict[str, int]:
        """How many refusals each cause code accounts for."""
        return dict(Counter(r.cause for r in self.refusals))

    def assumptions(self) -> dict[str, int]:
        """How many events carry each :class:`Assumed` code."""
        return dict(Counter(code for event in self.events for code in assumed_codes(event)))


def event_attributes(
    derived: Mapping[str, str | int | bool], caller: Mapping[str, str | int | bool], assumed: Iterable[str]
) -> dict[str, str | int | bool]:
    """The event's attributes: the helper's, then the caller's (which win), then ``assumed``.

    ``assumed`` is set last, so a caller's attribute cannot hide it (and a caller's own ``assumed`` is
    dropped when nothing was). When the three exceed the event's bound of 32 keys, the helper's own
    attributes give way, last first: an event with fewer facts beats an access left unrecorded.
    """
    codes = list(dict.fromkeys(assumed))
    out = {**derived, **caller}
    out.pop(ASSUMED_ATTRIBUTE, None)
    spare = [k for k in reversed(list(derived)) if k not in caller]
    while len(out) + bool(codes) > MAX_ATTRIBUTES and spare:
        del out[spare.pop(0)]
    if codes:
        out[ASSUMED_ATTRIBUTE] = ",".join(codes)
    return out


def result(events: Sequence[tuple[int, PhiAccess]], refusals: Sequence[Refusal], units: int) -> HelperResult:
    return HelperResult(
        events=tuple(e for _, e in events),
        refusals=tuple(refusals),
        units=units,
        event_units=tuple(u for u, _ in events),
    )
