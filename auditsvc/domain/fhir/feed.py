"""ITI-20 (FHIR feed option): one R4 AuditEvent in, the service's events out.

Pure: no I/O. ``map_audit_event`` reads an AuditEvent (a JSON object as
sent, IHE BALP shapes expected but not required) and returns one event per
patient entity, in the wire shape of DESIGN.md "The event", validated by the
SDK's own wire schema (``auditsvc_sdk.wire``), so a fed event is exactly one
``POST /v1/events`` would accept.

Best effort, never silent (BALP's rule, and the SDK helpers'): what the
resource says is used; what had to be assumed is flagged in
``attributes["assumed"]`` (comma-separated codes, ``FeedAssumed`` and the
SDK's ``Assumed``). What cannot be mapped at all raises ``FeedRefusal``
naming the element (``AuditEvent.entity[1].what.identifier``), never a value.

The mapping (docs/fhir.md, "Feed", has the table):

* ``period.start`` (when the access happened) else ``recorded`` -> ``occurred_at``;
  ``recorded`` is required (R4 1..1).
* ``type``/``subtype`` -> ``event_type`` (a disclosure, export, query,
  break-glass, or ``fhir-rest``), both kept as codes in ``attributes``.
* ``action`` as is; ``outcome`` (R4 code, or R5's ``outcome.code`` Coding).
* ``purposeOfEvent`` and agents' ``purposeOfUse`` -> ``purpose_of_use``;
  ``ETREAT`` (break-glass, as the service models it) wins over other codes.
* BALP's agent roles: 110153 Source Role ID and 110152 Destination Role ID
  name the two systems. They name who *initiated* the exchange, not where
  the PHI went: in a query (action ``E``, search, or an entity with role 24
  Query) the client is the 110153 agent while the PHI flows from the server
  (110152) to it, so the two are swapped; in a read, a create/update/delete
  and a disclosure, PHI flows from the 110153 agent to the 110152 agent.
* the requestor agent -> ``actor`` (a user unless it names a Device or Organization).
* each patient entity (type 1 Person / role 1 Patient) -> one event, with
  every identifier it carries: ``what.identifier``, ``valueIdentifier``
  extensions on the entity or its reference, a contained Patient's
  identifiers (``#id``), and the logical id of an absolute Patient reference.
* other entities -> ``data_elements`` (resource types; a query entity gives
  the type it searched, never its parameters, which may hold PHI); an
  X-Request-Id transaction entity -> ``message_id``.

``event_id`` is derived (UUIDv5) from the source system, the AuditEvent's
``identifier`` (else its ``id``) and the patient's index, so a resend of the
same AuditEvent is answered ``duplicate`` by the append path and stores
nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from auditsvc_sdk import new_event_id
from auditsvc_sdk.helpers import ASSUMED_ATTRIBUTE, IdentifierPolicy
from auditsvc_sdk.wire import WireEvent, parse_event_batch
from pydantic import ValidationError

from ..ingest import validation_errors
from .codes import EVENT_TYPE_SYSTEM
from .feed_agents import Agent, actor_of, purpose_of, systems_of
from .feed_entities import entities_of, is_query_entity
from .feed_reading import (
    AUDIT_EVENT_TYPE,
    CODE,
    DCM,
    LIFECYCLE,
    RESTFUL_INTERACTION,
    FeedAssumed,
    FeedRefusal,
    coding_text,
    codings,
    instant,
    items,
    obj,
    short,
    sub,
    text,
)

__all__ = ["FEED_ORIGIN", "FeedAssumed", "FeedContext", "FeedRefusal", "MappedAuditEvent", "map_audit_event"]

FEED_ORIGIN = "fhir-iti20"
# Derived event ids live in their own UUIDv5 namespace.
FEED_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:auditsvc:fhir-iti20")

ACTIONS = frozenset({"C", "R", "U", "D", "E"})
OUTCOMES = {"0": 0, "4": 4, "8": 8, "12": 12}
SEARCHES = frozenset({"search", "search-type", "search-system"})
ACTION_BY_INTERACTION = {
    "read": "R", "vread": "R", "history": "R", "history-instance": "R", "history-type": "R",
    "search": "E", "search-type": "E", "search-system": "E", "operation": "E",
    "create": "C", "update": "U", "patch": "U", "delete": "D",
}  # fmt: skip
EMERGENCY_OVERRIDE = "110127"  # DCM Emergency Override Started, as a type or a subtype
# DICOM / audit-event-type codes with a name of their own in the service.
EVENT_TYPE_BY_CODE = {
    "110106": "export",
    "110107": "import",
    "110127": "break-glass",  # Emergency Override Started
    "110112": "query",
    "110110": "patient-record",
    "110100": "application-activity",
    "rest": "fhir-rest",
}


@dataclass(frozen=True, slots=True)
class FeedContext:
    """What the mapping needs from its caller: the systems the emitter token
    may write as (the source when no agent names one) and the identifier
    policy (the SDK helpers' default unless a site sets its own)."""

    token_systems: tuple[str, ...]
    policy: IdentifierPolicy = field(default_factory=IdentifierPolicy)


@dataclass(frozen=True, slots=True)
class MappedAuditEvent:
    """One AuditEvent's events (one per patient), validated, with the element
    that named their source system (for a ``source_not_allowed`` refusal)."""

    events: list[WireEvent]
    source_path: str


class _Draft:
    """What is known of an AuditEvent being read, and what was assumed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.assumed: list[str] = []
        self.attributes: dict[str, str | int | bool] = {"origin": FEED_ORIGIN}

    def assume(self, *codes: str) -> None:
        self.assumed += [c for c in codes if c not in self.assumed]


def map_audit_event(
    resource: Any, context: FeedContext, path: str = "AuditEvent", full_url: str | None = None
) -> MappedAuditEvent:
    """The events of one AuditEvent (one per patient entity); ``FeedRefusal``
    if it cannot be mapped. ``path`` is where the resource sits in the request
    (``Bundle.entry[2].resource``), the prefix of every element named;
    ``full_url`` its Bundle entry's ``fullUrl``, which recognises a resent
    Bundle when the resource has neither identifier nor id."""
    ae = obj(resource, path, required=True)
    assert ae is not None
    if ae.get("resourceType") != "AuditEvent":
        raise FeedRefusal(f"{path}.resourceType", "must be AuditEvent", "not-supported")
    draft = _Draft(path)
    resend_key = _resend_key(ae, draft) or (f"fullUrl:{full_url}" if full_url else None)
    occurred_at = _occurred_at(ae, path)
    action, is_query = _action(ae, draft)
    outcome = _outcome(ae, draft)
    event_type = _event_type(ae, draft, is_query)
    agents: list[Agent] = [
        (obj(a, f"{path}.agent[{i}]") or {}, f"{path}.agent[{i}]")
        for i, a in enumerate(items(ae.get("agent"), f"{path}.agent"))
    ]
    systems, assumed = systems_of(agents, action, is_query, context.token_systems, path)
    draft.assume(*assumed)
    actor, assumed = actor_of(agents, systems)
    draft.assume(*assumed)
    purpose, purposes, assumed = purpose_of(ae, agents, path)
    draft.assume(*assumed)
    draft.attributes.update(purposes)
    _observer(ae, draft)
    entities = entities_of(ae, systems.source["system_id"], context.policy, path)
    data_elements = entities.data_elements
    if not data_elements:
        data_elements = ["Patient"]
        draft.assume(FeedAssumed.DATA_ELEMENTS_UNKNOWN)
    events: list[dict[str, Any]] = []
    for index, patient in enumerate(entities.patients):
        attributes: dict[str, str | int | bool] = dict(draft.attributes)
        if len(entities.patients) > 1:
            attributes["fhir_patient_index"] = index
            attributes["fhir_patient_count"] = len(entities.patients)
        flagged = [*draft.assumed, *(a for a in patient.assumed if a not in draft.assumed)]
        if flagged:
            attributes[ASSUMED_ATTRIBUTE] = ",".join(flagged)
        event: dict[str, Any] = {
            "event_id": str(_event_id(systems.source["system_id"], resend_key, index)),
            "occurred_at": occurred_at,
            "action": action,
            "event_type": event_type,
            "patient": {"identifiers": [{"system": s, "value": v} for s, v in patient.identifiers]},
            "data_elements": data_elements,
            "source": systems.source,
            "destination": systems.destination,
            "actor": actor,
            "outcome": outcome,
            "attributes": attributes,
        }
        if purpose is not None:
            event["purpose_of_use"] = purpose
        if entities.message_id is not None:
            event["message_id"] = entities.message_id
        events.append(event)
    return MappedAuditEvent(_validated(events, path), systems.source_path)


def _resend_key(ae: Mapping[str, Any], draft: _Draft) -> str | None:
    """What makes a resend the same AuditEvent: its business identifier, else its id."""
    key = None
    rid = text(ae.get("id"))
    if rid is not None:
        draft.attributes["fhir_id"] = short(rid)
        key = f"id:{rid}"
    # R4 has one identifier; R5 (and some R4 senders) a list: the first one counts.
    found = ae.get("identifier")
    ident = found[0] if isinstance(found, list) and found and isinstance(found[0], Mapping) else sub(ae, "identifier")
    value = text(ident.get("value"))
    if value is not None:
        written = f"{text(ident.get('system')) or ''}|{value}"
        draft.attributes["fhir_identifier"] = short(written)
        key = f"identifier:{written}"
    return key


def _event_id(source_id: str, resend_key: str | None, index: int) -> uuid.UUID:
    if resend_key is None:
        return uuid.UUID(str(new_event_id()))  # nothing identifies a resend: every POST is a new access
    return uuid.uuid5(FEED_NAMESPACE, f"{source_id}\x1f{resend_key}\x1f{index}")


def _occurred_at(ae: Mapping[str, Any], path: str) -> str:
    if ae.get("recorded") is None:
        raise FeedRefusal(f"{path}.recorded", "is required (when the event was recorded)", "required")
    when = instant(ae["recorded"], f"{path}.recorded")
    period = obj(ae.get("period"), f"{path}.period")
    if period is not None and period.get("start") is not None:
        when = instant(period["start"], f"{path}.period.start")  # when the access itself happened
    return when.isoformat()


def _action(ae: Mapping[str, Any], draft: _Draft) -> tuple[str, bool]:
    """The action, and whether the event is a query (which swaps BALP's roles)."""
    interactions = [
        c.get("code") for s in items(ae.get("subtype"), f"{draft.path}.subtype") for c in codings(s)
        if c.get("system") in (RESTFUL_INTERACTION, None)
    ]  # fmt: skip
    action = ae.get("action")
    if action is None:
        inferred = next((ACTION_BY_INTERACTION[i] for i in interactions if i in ACTION_BY_INTERACTION), None)
        action = inferred or "E"
        draft.assume(FeedAssumed.ACTION_FROM_SUBTYPE if inferred else FeedAssumed.ACTION_UNKNOWN)
    elif action not in ACTIONS:
        raise FeedRefusal(f"{draft.path}.action", "must be one of the codes C, R, U, D, E", "code-invalid")
    entities = items(ae.get("entity"), f"{draft.path}.entity")
    is_query = action == "E" and (any(map(is_query_entity, entities)) or any(i in SEARCHES for i in interactions))
    return action, is_query


def _outcome(ae: Mapping[str, Any], draft: _Draft) -> int:
    value = ae.get("outcome")
    where = f"{draft.path}.outcome"
    if value is None:
        draft.assume(FeedAssumed.OUTCOME_UNKNOWN)
        return 0
    if isinstance(value, Mapping):  # R5: outcome.code is a Coding
        where += ".code"
        value = sub(value, "code").get("code")
    if not isinstance(value, str) or value not in OUTCOMES:
        raise FeedRefusal(where, "must be one of the codes 0, 4, 8, 12 (audit-event-outcome)", "code-invalid")
    return OUTCOMES[value]


def _event_type(ae: Mapping[str, Any], draft: _Draft, is_query: bool) -> str:
    where = f"{draft.path}.type"
    coding = next((c for c in codings(obj(ae.get("type"), where, required=True)) if text(c.get("code"))), None)
    if coding is None:
        raise FeedRefusal(f"{where}.code", "is required (the kind of event)", "required")
    code = str(coding["code"]).strip()
    draft.attributes["fhir_type"] = short(coding_text(coding))
    subtypes = [c for s in items(ae.get("subtype"), f"{draft.path}.subtype") for c in codings(s) if c.get("code")]
    if subtypes:
        draft.attributes["fhir_subtype"] = short(",".join(coding_text(c) for c in subtypes))
    own = next((str(c["code"]) for c in subtypes if c.get("system") == EVENT_TYPE_SYSTEM), None)
    if own is not None and CODE.match(own):
        return own  # the service's own event type, as the facade writes it: read back as it was
    if any(c.get("code") == "disclose" and c.get("system") in (LIFECYCLE, None) for c in subtypes):
        return "disclosure"  # BALP PrivacyDisclosure, at the source (110106 Export) or the recipient (110107 Import)
    if any(c.get("code") == EMERGENCY_OVERRIDE and c.get("system") in (DCM, None) for c in [coding, *subtypes]):
        return "break-glass"
    if is_query:
        return "query"
    known = EVENT_TYPE_BY_CODE.get(code)
    if known is not None and coding.get("system") in (DCM, AUDIT_EVENT_TYPE, None):
        return known
    generic = f"fhir-{code}"
    if CODE.match(generic):
        draft.assume(FeedAssumed.EVENT_TYPE_GENERIC)
        return generic
    raise FeedRefusal(f"{where}.code", "is not a usable code (letters, digits, . _ : - only)", "code-invalid")


def _observer(ae: Mapping[str, Any], draft: _Draft) -> None:
    """``source.observer`` (the system that recorded the event) and ``source.site``, as attributes."""
    source = sub(ae, "source")
    observer = sub(source, "observer")
    name = (
        text(sub(observer, "identifier").get("value"))
        or text(observer.get("reference"))
        or text(observer.get("display"))
    )
    if name:
        draft.attributes["fhir_observer"] = short(name)
    site = text(source.get("site"))
    if site:
        draft.attributes["fhir_site"] = short(site)


# ---------------------------------------------------------------- validation

# The AuditEvent element each event field comes from, to name it when the
# built event fails the wire schema (rare: the mapping checks bounds first).
_ELEMENT_OF_FIELD = {
    "occurred_at": "recorded",
    "action": "action",
    "event_type": "type",
    "patient": "entity",
    "data_elements": "entity",
    "source": "agent",
    "destination": "agent",
    "actor": "agent",
    "purpose_of_use": "purposeOfEvent",
    "outcome": "outcome",
    "message_id": "entity",
}
_ELEMENT_OF_ATTRIBUTE = {
    "fhir_id": "id",
    "fhir_identifier": "identifier",
    "fhir_type": "type",
    "fhir_subtype": "subtype",
    "fhir_observer": "source.observer",
    "fhir_site": "source.site",
    "fhir_purposes": "purposeOfEvent",
}


def _validated(events: list[dict[str, Any]], path: str) -> list[WireEvent]:
    """The events through the wire schema ``POST /v1/events`` uses."""
    try:
        validated: list[WireEvent] = parse_event_batch(orjson.dumps({"events": events}))
        return validated
    except ValidationError as exc:
        err = validation_errors(exc)[0]  # the service's wording, the input never quoted
        loc = err["loc"]
        field_name = str(loc[2]) if len(loc) > 2 else ""
        element = _ELEMENT_OF_FIELD.get(field_name, "")
        if field_name == "attributes" and len(loc) > 3:
            element = _ELEMENT_OF_ATTRIBUTE.get(str(loc[3]), "")
        raise FeedRefusal(
            f"{path}.{element}" if element else path, f"cannot be stored: {err['msg']}", "value"
        ) from None
