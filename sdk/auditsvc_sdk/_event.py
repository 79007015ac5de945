"""The PHI access event: one access to one patient's data by one actor.

The model is the contract in DESIGN.md ("The event"). It validates with
bounds on every string and list, forbids unknown fields, and normalises what
would otherwise make the same access hash differently:

* ``occurred_at`` is converted to UTC and truncated to whole microseconds
  (PostgreSQL's precision); sub-microsecond digits are dropped, never rounded.
* identifier systems and values are stripped of surrounding white space.
* optional fields that are absent, ``None`` or empty are omitted from the
  record (``attributes: {}`` and no ``attributes`` are the same record).

Validation error messages never contain the offending value: the value may
be a patient identifier.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

__all__ = [
    "Action",
    "Actor",
    "ActorType",
    "Identifier",
    "Outcome",
    "Patient",
    "PhiAccess",
    "SystemRef",
    "events_to_json",
    "format_timestamp",
    "new_event_id",
]

MAX_IDENTIFIERS = 20
MAX_DATA_ELEMENTS = 200
MAX_ATTRIBUTES = 32
# Integers outside IEEE-754's exact range do not survive every JSON
# implementation, and RFC 8785 serialises numbers as doubles.
MAX_SAFE_INT = 2**53 - 1

# PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as
# UTF-8; either would make what is stored differ from what was hashed.
_FORBIDDEN_CHARS = re.compile(r"[\x00\ud800-\udfff]")


def _clean_text(value: str) -> str:
    if _FORBIDDEN_CHARS.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


# NUL and unpaired surrogates: PostgreSQL text cannot hold NUL, and a lone
# surrogate cannot be encoded as UTF-8. The JSON parser already refuses lone
# surrogates; this pattern (checked in pydantic-core, not Python, because it
# runs on every string of every event) refuses NUL.
NO_NUL_PATTERN = r"^[^\x00]*$"


def _text(max_length: int) -> Any:
    """Required text, stripped of surrounding white space, then 1..max_length long."""
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length, pattern=NO_NUL_PATTERN)
    ]


Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
SystemId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+~-]{0,127}$")]
# Attribute keys are ASCII so that JSON key order is the same whether sorted
# by UTF-16 code unit (RFC 8785) or by code point.
AttributeKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=1024), AfterValidator(_clean_text)]
    | Annotated[int, Field(strict=True, ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
    | Annotated[bool, Field(strict=True)]
)


class Action(StrEnum):
    """FHIR AuditEvent.action."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(IntEnum):
    """FHIR AuditEvent.outcome."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


class ActorType(StrEnum):
    USER = "user"
    SYSTEM = "system"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Identifier(_Model):
    """One identifier of the patient: ``system`` is the assigning authority
    (HL7 CX-4, a FHIR Identifier.system URI or an OID), ``value`` the id."""

    system: _text(256)  # type: ignore[valid-type]
    value: _text(128)  # type: ignore[valid-type]


class Patient(_Model):
    identifiers: list[Identifier] = Field(min_length=1, max_length=MAX_IDENTIFIERS)

    @field_validator("identifiers")
    @classmethod
    def _distinct(cls, identifiers: list[Identifier]) -> list[Identifier]:
        seen: set[tuple[str, str]] = set()
        unique: list[Identifier] = []
        for ident in identifiers:
            key = (ident.system, ident.value)
            if key not in seen:
                seen.add(key)
                unique.append(ident)
        return unique


class SystemRef(_Model):
    system_id: SystemId
    name: _text(256) | None = None  # type: ignore[valid-type]


class Actor(_Model):
    id: _text(256)  # type: ignore[valid-type]
    type: ActorType
    role: _text(128) | None = None  # type: ignore[valid-type]
    name: _text(256) | None = None  # type: ignore[valid-type]


def new_event_id() -> uuid.UUID:
    """A fresh UUIDv7 (RFC 9562): time-ordered, so the event_id index stays compact."""
    import os
    import time

    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def format_timestamp(value: datetime) -> str:
    """The chain's one timestamp form: UTC, four-digit year, six fractional digits, ``Z``."""
    # Not strftime: glibc does not zero-pad years below 1000; isoformat
    # always writes four year digits, and six fractional ones when asked.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339_only(value: Any) -> Any:
    # pydantic would also take Unix seconds (and round them); an audit
    # timestamp is RFC 3339 text with an offset, or a datetime.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    raise ValueError("must be an RFC 3339 timestamp with a UTC offset, e.g. 2026-11-24T09:30:00.123456-05:00")


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


class PhiAccess(_Model):
    """One PHI access event, as the emitter sends it (DESIGN.md "The event")."""

    event_id: uuid.UUID = Field(default_factory=new_event_id)
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_to_utc)]
    action: Action
    event_type: Code
    patient: Patient
    data_elements: list[_text(128)] = Field(min_length=1, max_length=MAX_DATA_ELEMENTS)  # type: ignore[valid-type]
    source: SystemRef
    destination: SystemRef
    actor: Actor
    purpose_of_use: Code | None = None
    outcome: Outcome = Outcome.SUCCESS
    message_id: _text(199) | None = None  # type: ignore[valid-type]
    trace_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None
    span_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] | None = None
    attributes: dict[AttributeKey, AttributeValue] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)

    def to_json(self) -> dict[str, Any]:
        """The event's JSON object with the chain's normal forms: UTC
        microsecond timestamp, lowercase UUID, absent optionals omitted."""
        return events_to_json([self])[0]


_EVENT_LIST: TypeAdapter[list[PhiAccess]] = TypeAdapter(list[PhiAccess])


def events_to_json(events: Sequence[PhiAccess]) -> list[dict[str, Any]]:
    """``to_json()`` of many events at once.

    One pydantic-core dump of the whole list (UUIDs as lowercase text, enums
    as their codes, ``None`` optionals left out) costs a fraction of a dump
    per event; then the two normal forms pydantic does not produce: the
    timestamp always with six fractional digits, and no empty ``attributes``.
    """
    out = _EVENT_LIST.dump_python(list(events), mode="json", exclude_none=True)
    for event, data in zip(events, out, strict=True):
        data["occurred_at"] = format_timestamp(event.occurred_at)
        if not data["attributes"]:
            del data["attributes"]
    return out  # type: ignore[no-any-return]
