"""The message's participants as the event's actor, source and destination systems, and observer.

DICOM's 110153 (Source) and 110152 (Destination) roles name who started an
exchange, not where the PHI went: in a query (EventID 110112, or an object
with role 24 Query) 110153 is the system that asked and the results flow to
it from the 110152 system that answered, so the two are swapped, as the
FHIR feed reads IHE BALP's agents (domain/fhir/feed_agents.py). The
requestor is the actor, a person before an application. The
AuditSourceIdentification is the observer, and stands in as the source when
no participant names one.
"""

from __future__ import annotations

from typing import Any

from auditsvc_sdk.helpers import Assumed

from . import codes
from .draft import Draft, Flag, as_code, as_label, as_system_id
from .message import AuditMessage, Participant

__all__ = ["UNKNOWN_SYSTEM", "actor_of", "observer_of", "systems_of"]

UNKNOWN_SYSTEM = "unknown"
# WS-Addressing's "reply to the caller": the UserID IHE gives a SOAP requestor that names no endpoint.
_ANONYMOUS = frozenset(
    {
        "http://www.w3.org/2005/08/addressing/anonymous",
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous",
    }
)


def _is_system(p: Participant) -> bool:
    if p.user_type is not None:
        return p.user_type.strip() == "2"
    return bool(p.role_codes & codes.FLOW_ROLES)


def actor_of(message: AuditMessage, observer: str | None, draft: Draft) -> dict[str, Any]:
    requestors = [p for p in message.participants if p.requestor]
    people = [p for p in requestors if not _is_system(p)]
    chosen = people[0] if people else requestors[0] if requestors else None
    if chosen is None:
        named = [p for p in message.participants if _user_id(p) or p.alternative_id]
        chosen = next((p for p in named if codes.SOURCE_ROLE in p.role_codes), named[0] if named else None)
        if chosen is not None:
            draft.assumed.append(Flag.ACTOR_NOT_REQUESTOR)
    actor_id = _user_id(chosen) if chosen else None
    if chosen is not None and actor_id is None:
        actor_id = chosen.alternative_id
        draft.assumed.append(Flag.ACTOR_ID)
    if chosen is None or actor_id is None:
        draft.assumed.append(Flag.ACTOR_FROM_OBSERVER)
        return {"id": observer or UNKNOWN_SYSTEM, "type": "system"}
    actor: dict[str, Any] = {"id": actor_id[:256], "type": "system" if _is_system(chosen) else "user"}
    role = next((r for r in chosen.roles if r.code not in codes.FLOW_ROLES), None)
    if role is not None:
        actor["role"] = (as_label(role.display) or role.code)[:128]
    if chosen.network_access_point and as_label(chosen.network_access_point):
        draft.attributes["actor_network_access_point"] = chosen.network_access_point
    return actor


def _user_id(p: Participant) -> str | None:
    return None if p.user_id in _ANONYMOUS else p.user_id


def _participant_system(message: AuditMessage, role: str, draft: Draft) -> str | None:
    """The system id of the participant in ``role``: its UserID (AlternativeUserID is a process id,
    new at every restart, so never a system's name)."""
    for p in message.participants:
        if role in p.role_codes:
            found = as_system_id(_user_id(p), draft)
            if found is not None:
                return found
    return None


def _is_query(message: AuditMessage) -> bool:
    return message.event_id.code == codes.QUERY_EVENT or any(o.role == codes.QUERY_ROLE for o in message.objects)


def systems_of(message: AuditMessage, observer: str | None, draft: Draft) -> tuple[str, str]:
    initiator = _participant_system(message, codes.SOURCE_ROLE, draft)
    responder = _participant_system(message, codes.DESTINATION_ROLE, draft)
    source, destination = (responder, initiator) if _is_query(message) else (initiator, responder)
    if source is None:
        for application in codes.APPLICATION_ROLES:
            source = _participant_system(message, application, draft)
            if source is not None:
                draft.assumed.append(Flag.SOURCE_FROM_APPLICATION)
                break
    if source is None and observer is not None:
        source = observer
        draft.assumed.append(Flag.SOURCE_FROM_OBSERVER)
    if source is None:
        source = UNKNOWN_SYSTEM
        draft.assumed.append(Assumed.SOURCE_UNKNOWN)
    if destination is None:
        destination = source
        draft.assumed.append(Flag.DESTINATION_FROM_SOURCE)
    return source, destination


def observer_of(message: AuditMessage, draft: Draft) -> str | None:
    if not message.sources:
        return None
    first = message.sources[0]
    observer = as_system_id(first.source_id, draft)
    if observer:
        draft.attributes["observer"] = observer
    site = as_label(first.site_id)
    if site:
        draft.attributes["observer_site"] = site
    kinds = [codes.SOURCE_TYPES.get(c, c) for c in first.type_codes if as_code(c)]
    if kinds:
        draft.attributes["observer_type"] = ",".join(kinds)[:1024]
    return observer
