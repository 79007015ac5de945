"""An AuditEvent's agents as the event's systems, actor and purpose of use.

BALP names the two systems of an exchange with DICOM's 110153 Source Role ID
and 110152 Destination Role ID, and those name who *initiated* the exchange,
not where the PHI went. In a query (action ``E``: a search, or an entity with
role 24 Query) the client is the 110153 agent while the PHI flows from the
server (110152) to it, so the two are swapped; in a read (BALP Read: client
110152, server 110153), a create/update/delete and a privacy disclosure,
the PHI flows from the 110153 agent to the 110152 agent. Older BALP versions
name the client 110150 Application and the server ``custodian``: a read or a
query then moves PHI from the server to the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .feed_reading import CODE, SYSTEM_ID, FeedAssumed, FeedRefusal, codings, has_code, items, short, sub, text

__all__ = ["Agent", "Systems", "actor_of", "purpose_of", "systems_of"]

SOURCE_ROLE = "110153"  # DCM Source Role ID: who sends (or, in a query, asks)
DESTINATION_ROLE = "110152"  # DCM Destination Role ID
APPLICATION = "110150"  # DCM Application: the client in older BALP (PatientDelete)
CUSTODIAN = "custodian"  # provenance-participant-type: the server in older BALP
SYSTEM_ROLES = (SOURCE_ROLE, DESTINATION_ROLE, APPLICATION, CUSTODIAN)
NON_PERSON_REFERENCES = ("Device/", "Organization/", "Endpoint/", "Location/", "HealthcareService/")
BREAK_GLASS_PURPOSE = "ETREAT"  # as the service models break-glass (store/readmodel.py)

Agent = tuple[Mapping[str, Any], str]
"""An agent and its element path (``AuditEvent.agent[1]``)."""


@dataclass(frozen=True, slots=True)
class Systems:
    source: dict[str, str]
    source_path: str  # the element that named the source (a refusal names it)
    destination: dict[str, str]
    client: Agent | None  # the agent that made the request (the actor when no requestor is named)


def _agent_system(agent: Mapping[str, Any], path: str) -> tuple[dict[str, str], str] | None:
    """A system the agent names, and the element it came from: the first of
    ``who.identifier.value``, ``who.reference``, ``who.display`` (BALP's
    examples name machines there) and ``network.address`` that is a usable
    system id."""
    who = sub(agent, "who")
    for value, where in (
        (text(sub(who, "identifier").get("value")), f"{path}.who.identifier.value"),
        (text(who.get("reference")), f"{path}.who.reference"),
        (text(who.get("display")), f"{path}.who.display"),
        (text(sub(agent, "network").get("address")), f"{path}.network.address"),
    ):
        if value is not None and SYSTEM_ID.match(value):
            system: dict[str, str] = {"system_id": value}
            name = text(who.get("display")) or text(agent.get("name"))
            if name is not None:
                system["name"] = name[:256]
            return system, where
    return None


def _role_agent(agents: Sequence[Agent], *codes: str) -> Agent | None:
    for code in codes:
        for agent, path in agents:
            if has_code(agent.get("type"), code):
                return agent, path
    return None


def systems_of(
    agents: Sequence[Agent], action: str, is_query: bool, token_systems: Sequence[str], path: str
) -> tuple[Systems, list[str]]:
    """The PHI's source and destination by BALP's direction rules, the client,
    and what was assumed. With no agent naming the source, the token's one
    system is the source; a token bound to several cannot say which."""
    assumed: list[str] = []
    initiator = _role_agent(agents, SOURCE_ROLE)
    responder = _role_agent(agents, DESTINATION_ROLE)
    if initiator is not None or responder is not None:
        sender, receiver = (responder, initiator) if is_query else (initiator, responder)
    else:
        client, server = _role_agent(agents, APPLICATION), _role_agent(agents, CUSTODIAN)
        sender, receiver = (server, client) if action == "R" or is_query else (client, server)
    found = _agent_system(*sender) if sender is not None else None
    if found is not None:
        source, source_path = found
    else:
        usable = [s for s in token_systems if SYSTEM_ID.match(s)]
        if len(usable) != 1:
            raise FeedRefusal(
                sender[1] if sender is not None else f"{path}.agent",
                "no agent names the system the data came from (BALP 110153 Source Role ID, or 110152 in a query, "
                "with who.identifier), and the token may write as more than one system",
                "required",
                422,
            )
        source, source_path = {"system_id": usable[0]}, f"{path}.agent"
        assumed.append(FeedAssumed.SOURCE_FROM_TOKEN)
    found = _agent_system(*receiver) if receiver is not None else None
    if found is None:
        destination = {"system_id": "unknown"}
        assumed.append(FeedAssumed.DESTINATION_UNKNOWN)
    else:
        destination = found[0]
    # The client receives the PHI in a read or a query, and sends it otherwise.
    client = receiver if action == "R" or is_query else sender
    return Systems(source, source_path, destination, client), assumed


def _is_system_agent(agent: Mapping[str, Any]) -> bool:
    reference = text(sub(agent, "who").get("reference")) or ""
    return any(has_code(agent.get("type"), c) for c in SYSTEM_ROLES) or reference.startswith(NON_PERSON_REFERENCES)


def _agent_id(agent: Mapping[str, Any]) -> str | None:
    who = sub(agent, "who")
    return (
        text(sub(who, "identifier").get("value"))
        or text(who.get("reference"))
        or text(agent.get("altId"))
        or text(who.get("display"))
        or text(agent.get("name"))
    )


def _role(agent: Mapping[str, Any], path: str) -> str | None:
    """The agent's first role: a code, else its display or text."""
    for concept in items(agent.get("role"), f"{path}.role"):
        for coding in codings(concept):
            found = text(coding.get("code")) or text(coding.get("display"))
            if found:
                return found
        if isinstance(concept, Mapping) and text(concept.get("text")):
            return text(concept.get("text"))
    return None


def actor_of(agents: Sequence[Agent], systems: Systems) -> tuple[dict[str, str], list[str]]:
    """Who performed the access, and what was assumed: the requestor agent (a
    person unless it is one of the systems or names a Device or an
    Organization), else the client system, else the source system."""
    requestors = [(a, p) for a, p in agents if a.get("requestor") is True and _agent_id(a)]
    chosen = next(((a, p) for a, p in requestors if not _is_system_agent(a)), None) or next(iter(requestors), None)
    assumed: list[str] = []
    if chosen is None and systems.client is not None and _agent_id(systems.client[0]):
        chosen = systems.client
        assumed.append(FeedAssumed.ACTOR_FROM_CLIENT)
    if chosen is None:
        return {"id": systems.source["system_id"], "type": "system"}, [FeedAssumed.ACTOR_FROM_SOURCE]
    agent, path = chosen
    actor_id = _agent_id(agent) or ""
    actor = {"id": actor_id[:256], "type": "system" if _is_system_agent(agent) else "user"}
    role = _role(agent, path)
    if role:
        actor["role"] = role[:128]
    name = text(agent.get("name")) or text(sub(agent, "who").get("display"))
    if name:
        actor["name"] = name[:256]
    return actor, assumed


def purpose_of(
    ae: Mapping[str, Any], agents: Sequence[Agent], path: str
) -> tuple[str | None, dict[str, str], list[str]]:
    """``purposeOfEvent``, then the agents' ``purposeOfUse``: the purpose of
    use, attributes (every code when there are several) and what was assumed.
    ``ETREAT`` wins wherever it is, so an emergency access is never filed as
    a routine one."""
    concepts = items(ae.get("purposeOfEvent"), f"{path}.purposeOfEvent")
    for agent, agent_path in agents:
        concepts += items(agent.get("purposeOfUse"), f"{agent_path}.purposeOfUse")
    codes: list[str] = []
    assumed: list[str] = []
    for concept in concepts:
        for coding in codings(concept):
            code = text(coding.get("code"))
            if code is None:
                continue
            if not CODE.match(code):
                assumed.append(FeedAssumed.PURPOSE_UNUSABLE)
            elif code not in codes:
                codes.append(code)
    attributes = {"fhir_purposes": short(",".join(codes))} if len(codes) > 1 else {}
    if BREAK_GLASS_PURPOSE in codes:
        return BREAK_GLASS_PURPOSE, attributes, assumed
    return (codes[0] if codes else None), attributes, assumed
