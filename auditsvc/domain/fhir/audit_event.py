"""A stored event record as an R4 AuditEvent shaped after IHE BALP.

Pure functions, no I/O. The profile follows the event (docs/fhir.md has
the table):

* ``disclosure`` and ``export`` events: BALP PrivacyDisclosure.Source
  (type DCM 110106 Export, subtype ISO 21089 ``disclose``), the recipient
  agent typed both 110152 Destination Role ID and IRCP;
* the service's own reads of the log (``audit-log-query``): DCM 110101
  Audit Log Used, subtype ITI-81 when the read was a FHIR search or read,
  the query in ``entity.query`` (its patient-identifier values sealed);
* every other event: the BALP Patient profile of its action (C Create,
  R Read, U Update, D Delete, E and ``query`` events Query), type ``rest``,
  subtype the FHIR restful interaction.

Every AuditEvent also carries the service's own ``event_type`` as a subtype
coding, and break-glass (purpose ``ETREAT`` or event type ``break-glass``)
adds DCM 110127 Emergency Override Started and ``ETREAT`` as the user's
``purposeOfUse`` as well as ``purposeOfEvent``.

BALP's agent roles follow DICOM: 110153 Source Role ID and 110152
Destination Role ID. In a read, a create, update or delete, a disclosure
and a message, they name where the PHI came from and went to: the event's
source is 110153, its destination 110152. In a query (action ``E``, event
type ``query``, and the service's own reads of the log) BALP names the
client 110153 and the server 110152, although the PHI flows from the server
to the client: the event's destination (which asked, and received) is
110153, its source 110152 (the FHIR feed reads them back the same way).
``agent.network.address`` is the system id (type 1, machine name).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..read_audit import READ_EVENT_TYPE
from . import codes as c

DISCLOSURE_EVENT_TYPES = frozenset({"disclosure", "export"})
QUERY_EVENT_TYPES = frozenset({"query"})
BREAK_GLASS_EVENT_TYPE = "break-glass"
FHIR_READ_QUERIES = frozenset({"fhir-search", "fhir-read"})
"""``attributes.query`` of the service's own FHIR reads of the log (ITI-81)."""
QUERY_ATTRIBUTE = "fhir_query"
"""The FHIR query of a search, in chunks ``fhir_query.0``, ``fhir_query.1``, ..."""

RESOURCE_TYPE = re.compile(r"^(?:[A-Z][a-z]+)+$")
"""A data element that names a FHIR resource type (``Observation``; not ``PID`` or ``Patient.name``):
its entity's ``what.type`` names it too."""

Reveal = Callable[[dict[str, Any]], dict[str, str]]
"""A stored identifier to ``{"system", "value"}`` (opened, or left sealed)."""


@dataclass(frozen=True, slots=True)
class Classification:
    """What an event is in BALP's terms."""

    profile: str | None
    type: dict[str, Any]
    subtypes: tuple[dict[str, Any], ...]
    client_is_destination: bool
    """A query: BALP's 110153 (the client) is the event's destination."""
    break_glass: bool
    audit_log_used: bool

    def entity_codes(self) -> tuple[set[str], set[str]]:
        """The codes of the entity types (audit-entity-type) and roles
        (object-role) an AuditEvent of this kind carries."""
        roles = {c.PATIENT_ROLE["code"], c.DOMAIN_RESOURCE_ROLE["code"]}
        if self.audit_log_used:
            roles.add(c.QUERY_ROLE["code"])
        return {c.PERSON["code"], c.SYSTEM_OBJECT["code"]}, roles


def classify(
    event_type: str, action: str, purpose_of_use: str | None, attributes: Mapping[str, Any] | None = None
) -> Classification:
    """The BALP profile, type and subtypes of an event (``attributes`` only
    matter for the service's own reads: ITI-81 when they were FHIR reads)."""
    own = c.coding(c.EVENT_TYPE_SYSTEM, event_type)
    break_glass = purpose_of_use == c.BREAK_GLASS_PURPOSE or event_type == BREAK_GLASS_EVENT_TYPE
    audit_log_used = event_type == READ_EVENT_TYPE
    subtypes: list[dict[str, Any]]
    if audit_log_used:
        profile, kind, pull = None, c.AUDIT_LOG_USED, True
        fhir = attributes is not None and attributes.get("query") in FHIR_READ_QUERIES
        subtypes = [c.ITI_81, own] if fhir else [own]
    elif event_type in DISCLOSURE_EVENT_TYPES:
        profile, kind, pull = c.PRIVACY_DISCLOSURE, c.EXPORT, False
        subtypes = [c.DISCLOSE, own]
    else:
        query = event_type in QUERY_EVENT_TYPES or action == "E"
        interaction = "search-type" if query else c.INTERACTION_BY_ACTION.get(action, "read")
        profile = c.PATIENT_QUERY if query else c.PROFILE_BY_ACTION.get(action, c.PATIENT_READ)
        kind = c.REST
        pull = query
        subtypes = [c.coding(c.RESTFUL_INTERACTION, interaction), own]
    if break_glass:
        subtypes.append(c.EMERGENCY_OVERRIDE)
    return Classification(profile, kind, tuple(subtypes), pull, break_glass, audit_log_used)


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def _system_agent(system: dict[str, Any], role: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    system_id = str(system.get("system_id", ""))
    who: dict[str, Any] = {"identifier": _identifier(c.SYSTEM_ID_SYSTEM, system_id)}
    if system.get("name"):
        who["display"] = system["name"]
    return {
        "type": {"coding": [role, *extra]},
        "who": who,
        "requestor": False,
        "network": {"address": system_id, "type": "1"},
    }


def _user_agent(actor: dict[str, Any], purpose: str | None) -> dict[str, Any]:
    who: dict[str, Any] = {"identifier": _identifier(c.ACTOR_ID_SYSTEM, str(actor.get("id", "")))}
    if actor.get("name"):
        who["display"] = actor["name"]
    agent: dict[str, Any] = {
        "type": {"coding": [c.HUMAN_USER if actor.get("type") == "user" else c.DATA_PROCESSOR]},
        "who": who,
        "requestor": True,
    }
    if actor.get("role"):
        agent["role"] = [{"text": str(actor["role"])}]
    if purpose:
        agent["purposeOfUse"] = [{"coding": [c.coding(c.PURPOSE_OF_USE, purpose)]}]
    return agent


def recorded_query(attributes: Mapping[str, Any]) -> str | None:
    """The FHIR query a search recorded in its chunks, or None."""
    parts = []
    index = 0
    while isinstance(part := attributes.get(f"{QUERY_ATTRIBUTE}.{index}"), str):
        parts.append(part)
        index += 1
    return "".join(parts) if parts else None


PATIENT_CONTAINED_ID = "patient"


def _patient_entity(identifiers: list[dict[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The patient entity and the contained Patient that carries every
    identifier (Reference.identifier holds only one: the first)."""
    what: dict[str, Any] = {"reference": f"#{PATIENT_CONTAINED_ID}", "type": "Patient"}
    if identifiers:
        what["identifier"] = identifiers[0]
    contained = {"resourceType": "Patient", "id": PATIENT_CONTAINED_ID, "identifier": identifiers}
    return {"what": what, "type": c.PERSON, "role": c.PATIENT_ROLE}, contained


def _entities(record: dict[str, Any], kind: Classification) -> list[dict[str, Any]]:
    """The entities after the patient: the recorded query, the data elements."""
    entities = []
    query = recorded_query(record.get("attributes") or {}) if kind.audit_log_used else None
    if query is not None:
        entities.append(
            {"type": c.SYSTEM_OBJECT, "role": c.QUERY_ROLE, "query": base64.b64encode(query.encode()).decode()}
        )
    for element in record.get("data_elements") or []:
        what = {"type": element, "display": element} if RESOURCE_TYPE.match(element) else {"display": element}
        entities.append(
            {
                "what": what,
                "type": c.SYSTEM_OBJECT,
                "role": c.DOMAIN_RESOURCE_ROLE,
                "name": element,
            }
        )
    return entities


@dataclass(frozen=True, slots=True)
class ChainPosition:
    """Where a record sits in the chain (the ``events`` row's hashes)."""

    log: str
    seq: int
    leaf_hash: bytes
    chain_hash: bytes


def _chain_extension(record: dict[str, Any], chain: ChainPosition) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "log", "valueString": chain.log},
        {"url": "seq", "valueDecimal": chain.seq},
        {"url": "leafHash", "valueString": chain.leaf_hash.hex()},
        {"url": "chainHash", "valueString": chain.chain_hash.hex()},
    ]
    if record.get("received_at"):
        parts.append({"url": "receivedAt", "valueInstant": record["received_at"]})
    if record.get("emitter"):
        parts.append({"url": "emitter", "valueString": str(record["emitter"])})
    return {"url": c.CHAIN_RECORD_EXTENSION, "extension": parts}


def to_audit_event(record: dict[str, Any], chain: ChainPosition, reveal: Reveal) -> dict[str, Any]:
    """The AuditEvent for one stored record (as stored: ``reveal`` opens or
    keeps its sealed identifiers, by the reader's entitlement)."""
    attributes = record.get("attributes") or {}
    purpose = record.get("purpose_of_use")
    kind = classify(str(record.get("event_type")), str(record.get("action")), purpose, attributes)
    if kind.break_glass and not purpose:
        purpose = c.BREAK_GLASS_PURPOSE
    source = record.get("source") or {}
    destination = record.get("destination") or {}
    # 110153 names where the PHI came from, except in a query (the client that asked).
    first, second = (destination, source) if kind.client_is_destination else (source, destination)
    recipient = [c.INFORMATION_RECIPIENT] if kind.profile == c.PRIVACY_DISCLOSURE else []
    agents = [
        _user_agent(record.get("actor") or {}, purpose),
        _system_agent(first, c.SOURCE_ROLE),
        _system_agent(second, c.DESTINATION_ROLE, *recipient),
    ]
    identifiers = [reveal(i) for i in (record.get("patient") or {}).get("identifiers") or []]
    patient, contained = _patient_entity(identifiers)
    event: dict[str, Any] = {"resourceType": "AuditEvent", "id": str(record["event_id"])}
    meta: dict[str, Any] = {"lastUpdated": record.get("received_at") or record["occurred_at"]}
    if kind.profile:
        meta["profile"] = [kind.profile]
    event["meta"] = meta
    event["contained"] = [contained]
    event["extension"] = [_chain_extension(record, chain)]
    event |= {
        "type": kind.type,
        "subtype": list(kind.subtypes),
        "action": record.get("action"),
        "period": {"start": record["occurred_at"], "end": record["occurred_at"]},
        "recorded": record.get("received_at") or record["occurred_at"],
        "outcome": str(record.get("outcome", 0)),
    }
    if purpose:
        event["purposeOfEvent"] = [{"coding": [c.coding(c.PURPOSE_OF_USE, purpose)]}]
    event["agent"] = agents
    observer: dict[str, Any] = {"identifier": _identifier(c.SYSTEM_ID_SYSTEM, str(source.get("system_id", "")))}
    if source.get("name"):
        observer["display"] = source["name"]
    event["source"] = {"observer": observer, "type": [c.APPLICATION_SERVER]}
    event["entity"] = [patient, *_entities(record, kind)]
    return event
