"""What the mapping of one message has gathered so far, what it assumed, and the text rules.

Every event of a message shares a ``Draft``: its fields, its attributes and
the codes of what had to be assumed (``Flag``, beside the SDK's ``Assumed``),
listed in ``attributes.assumed`` in the order they were met.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Draft", "Flag", "as_code", "as_label", "as_system_id"]

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:()/#+-]{0,95}")
_NOT_SYSTEM_CHAR = re.compile(r"[^A-Za-z0-9_.:/@+~-]+")
_EDGES = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
# "APPLICATION|FACILITY", the HL7 v2 sender as DICOM and IHE write it in UserID.
_HL7_APPLICATION = re.compile(r"([^|]+)\|([^|]+)")


class Flag:
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
class Draft:
    """What every event of one message shares."""

    assumed: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


def as_code(text: str | None) -> str | None:
    """``text`` if it is a code (the event's code alphabet, at most 64), else None: kept only then."""
    return text if text and _CODE.fullmatch(text) else None


def as_label(text: str | None) -> str | None:
    """``text`` if it reads as a short name (letters, digits, a few signs, at most 96), else None."""
    return text if text and _LABEL.fullmatch(text) else None


def as_system_id(text: str | None, draft: Draft) -> str | None:
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
        draft.assumed.append(Flag.SYSTEM_ID_REWRITTEN)
    return name
