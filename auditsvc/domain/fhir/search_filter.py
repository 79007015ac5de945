"""Which index drives a search, and the conditions the scanned rows are
filtered by (pure: no I/O).

The driver is the most selective parameter present: ``_id``, then the
patient, then the observer (``source.identifier``), an agent, an exact
``address``, else the period alone. Every other condition is checked on
the scanned facts (``matches_facts``); what only the JSON record holds
(``_lastUpdated``; ITI-81 among the subtypes of the service's own reads) is
checked on the page's records (``matches_record``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...store.fhir_search import ScannedFact
from ..read_audit import READ_EVENT_TYPE
from . import codes as c
from .audit_event import FHIR_READ_QUERIES, Classification, classify
from .search_params import SearchQuery, Token, TokenCondition

OUTCOME_SYSTEM = "http://hl7.org/fhir/audit-event-outcome"


@dataclass(frozen=True)
class Driver:
    """The index a search scans: ``kind`` ``ids``, ``patient``, ``facts`` or ``period``."""

    kind: str
    columns: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()


def _system_ids(tokens: tuple[Token, ...], systems: tuple[str, ...]) -> list[str]:
    return [t.value for t in tokens if t.system is None or t.system in systems]


def choose_driver(query: SearchQuery) -> Driver:
    """The driver of a search (its patient condition is resolved by the caller)."""
    if query.ids:
        return Driver("ids")
    if query.patients:
        return Driver("patient")
    if query.sources:
        return Driver("facts", ("source_system",), tuple(_system_ids(query.sources[0], (c.SYSTEM_ID_SYSTEM,))))
    if query.agents:
        tokens = query.agents[0]
        actors = {t.value for t in tokens if t.system in (None, c.ACTOR_ID_SYSTEM)}
        systems = {t.value for t in tokens if t.system in (None, c.SYSTEM_ID_SYSTEM)}
        if actors and not systems:
            return Driver("facts", ("actor_id",), tuple(sorted(actors)))
        if systems and not actors:
            return Driver("facts", ("source_system", "destination_system"), tuple(sorted(systems)))
        return Driver("facts", ("actor_id", "source_system", "destination_system"), tuple(sorted(actors | systems)))
    for condition in query.addresses:
        if all(exact for _, exact in condition):
            return Driver("facts", ("source_system", "destination_system"), tuple(sorted({v for v, _ in condition})))
    return Driver("period")


def _agent_match(tokens: tuple[Token, ...], fact: ScannedFact) -> bool:
    return any(
        t.matches(c.ACTOR_ID_SYSTEM, fact.actor_id)
        or t.matches(c.SYSTEM_ID_SYSTEM, fact.source_system)
        or t.matches(c.SYSTEM_ID_SYSTEM, fact.destination_system)
        for t in tokens
    )


def _address_match(condition: tuple[tuple[str, bool], ...], fact: ScannedFact) -> bool:
    for text, exact in condition:
        for system_id in (fact.source_system, fact.destination_system):
            if system_id == text if exact else system_id.casefold().startswith(text.casefold()):
                return True
    return False


def _coding_match(tokens: tuple[Token, ...], codings: list[dict[str, Any]]) -> bool:
    return any(t.matches(cd["system"], cd["code"]) for t in tokens for cd in codings)


def _code_values(name: str, kind: Classification, outcome: int) -> list[dict[str, Any]]:
    if name == "type":
        return [kind.type]
    if name == "subtype":
        return list(kind.subtypes)
    if name == "outcome":
        return [{"system": OUTCOME_SYSTEM, "code": str(outcome)}]
    types, roles = kind.entity_codes()
    if name == "entity-type":
        return [{"system": c.ENTITY_TYPE, "code": code} for code in types]
    return [{"system": c.OBJECT_ROLE, "code": code} for code in roles]


def _codes_match(codes: dict[str, tuple[TokenCondition, ...]], kind: Classification, outcome: int) -> bool:
    for name, conditions in codes.items():
        values = _code_values(name, kind, outcome)
        for condition in conditions:
            if _coding_match(condition.tokens, values) == condition.negated:
                return False
    return True


def matches_facts(query: SearchQuery, fact: ScannedFact) -> bool:
    """Every condition the read model can judge (a service read's ITI-81
    subtype counts as possibly present: ``matches_record`` decides)."""
    if not all(_agent_match(tokens, fact) for tokens in query.agents):
        return False
    if not all(any(t.matches(c.SYSTEM_ID_SYSTEM, fact.source_system) for t in tokens) for tokens in query.sources):
        return False
    if not all(_address_match(condition, fact) for condition in query.addresses):
        return False
    if not query.codes:
        return True
    variants = [None, {"query": next(iter(FHIR_READ_QUERIES))}] if fact.event_type == READ_EVENT_TYPE else [None]
    return any(
        _codes_match(query.codes, classify(fact.event_type, fact.action, fact.purpose_of_use, v), fact.outcome)
        for v in variants
    )


def matches_record(query: SearchQuery, record: dict[str, Any], received_at: datetime | None) -> bool:
    """The conditions only the record can judge."""
    updated = query.updated
    if updated is not None and (received_at is None or not updated[0] <= received_at < updated[1]):
        return False
    if query.codes and record.get("event_type") == READ_EVENT_TYPE:
        kind = classify(
            READ_EVENT_TYPE, str(record.get("action")), record.get("purpose_of_use"), record.get("attributes")
        )
        return _codes_match(query.codes, kind, int(record.get("outcome", 0)))
    return True
