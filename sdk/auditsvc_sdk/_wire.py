"""Fast validation of event batches straight from JSON bytes to plain dicts.

``PhiAccess`` is the SDK's model for people writing events; building seven
model instances per event and dumping them back to JSON is most of what the
service would spend on a batch. The service instead validates the same wire
shape as ``TypedDict`` schemas, which pydantic-core fills with plain dicts,
then applies the same normal forms as ``PhiAccess.to_json()``.

The field types are the very ones ``PhiAccess`` uses (imported, not
restated), so both accept and refuse the same input; tests/test_wire.py checks
that they agree, on acceptance and on the JSON they produce.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, NamedTuple, NotRequired

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

from ._event import (
    MAX_ATTRIBUTES,
    MAX_DATA_ELEMENTS,
    MAX_IDENTIFIERS,
    Action,
    ActorType,
    AttributeKey,
    AttributeValue,
    Code,
    Outcome,
    PhiAccess,
    SystemId,
    _rfc3339_only,
    _text,
    _to_utc,
    new_event_id,
)

__all__ = ["WireEvent", "parse_event_batch", "wire_event"]

_STRICT = ConfigDict(extra="forbid")

# One alias per length keeps mypy content and the schemas readable.
Text128 = _text(128)
Text199 = _text(199)
Text256 = _text(256)


class _Identifier(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    system: Text256  # type: ignore[valid-type]
    value: Text128  # type: ignore[valid-type]


class _Patient(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    identifiers: Annotated[list[_Identifier], Field(min_length=1, max_length=MAX_IDENTIFIERS)]


class _SystemRef(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    system_id: SystemId
    name: NotRequired[Text256 | None]  # type: ignore[valid-type]


class _Actor(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    id: Text256  # type: ignore[valid-type]
    type: ActorType
    role: NotRequired[Text128 | None]  # type: ignore[valid-type]
    name: NotRequired[Text256 | None]  # type: ignore[valid-type]


class _Event(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    event_id: NotRequired[uuid.UUID]
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_to_utc)]
    action: Action
    event_type: Code
    patient: _Patient
    data_elements: Annotated[list[Text128], Field(min_length=1, max_length=MAX_DATA_ELEMENTS)]  # type: ignore[valid-type]
    source: _SystemRef
    destination: _SystemRef
    actor: _Actor
    purpose_of_use: NotRequired[Code | None]
    outcome: NotRequired[Outcome]
    message_id: NotRequired[Text199 | None]  # type: ignore[valid-type]
    trace_id: NotRequired[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None]
    span_id: NotRequired[Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None]
    attributes: NotRequired[Annotated[dict[AttributeKey, AttributeValue], Field(max_length=MAX_ATTRIBUTES)]]


class _Batch(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    events: Annotated[list[_Event], Field(min_length=1)]


_BATCH: TypeAdapter[_Batch] = TypeAdapter(_Batch)
_OPTIONAL = ("purpose_of_use", "message_id", "trace_id", "span_id")


class WireEvent(NamedTuple):
    """One validated event: its normalised JSON, UTC time and id."""

    json: dict[str, Any]
    occurred_at: datetime
    event_id: uuid.UUID


def _normalise(event: dict[str, Any]) -> WireEvent:
    """The ``PhiAccess.to_json()`` form, in place. (This runs for every event
    the service takes in; it is written for speed, and tests/test_wire.py
    holds it to ``PhiAccess`` exactly.)"""
    event_id = event.get("event_id")
    if event_id is None:
        event_id = new_event_id()
    event["event_id"] = str(event_id)
    occurred_at: datetime = event["occurred_at"]  # already UTC (_to_utc)
    event["occurred_at"] = occurred_at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    identifiers = event["patient"]["identifiers"]
    if len(identifiers) > 1:
        # First-seen order; repeats are equal dicts (system and value only).
        unique = list({(i["system"], i["value"]): i for i in identifiers}.values())
        if len(unique) != len(identifiers):
            event["patient"]["identifiers"] = unique
    event["outcome"] = int(event.get("outcome", 0))
    event["action"] = event["action"].value
    actor = event["actor"]
    actor["type"] = actor["type"].value
    for key in _OPTIONAL:
        if key in event and event[key] is None:
            del event[key]
    for part in (event["source"], event["destination"]):
        if "name" in part and part["name"] is None:
            del part["name"]
    for key in ("role", "name"):
        if key in actor and actor[key] is None:
            del actor[key]
    if "attributes" in event and not event["attributes"]:
        del event["attributes"]
    return WireEvent(event, occurred_at, event_id)


def parse_event_batch(body: bytes | str) -> list[WireEvent]:
    """Validate ``{"events": [...]}`` and return each event's normalised JSON
    with its UTC ``occurred_at`` and id. Raises ``pydantic.ValidationError``."""
    batch = _BATCH.validate_json(body)
    return [_normalise(event) for event in batch["events"]]  # type: ignore[arg-type]


def wire_event(event: PhiAccess) -> WireEvent:
    """The same triple for an event built as a ``PhiAccess``."""
    return WireEvent(event.to_json(), event.occurred_at, event.event_id)
