"""An audit message's parts, read from the element tree in either naming.

DICOM PS3.15 A.5 writes coded values as ``csd-code`` / ``codeSystemName`` /
``originalText``; RFC 3881 (and many senders still) as ``code`` /
``codeSystemName`` / ``displayName``. Some senders write a code as the
element's text or as child elements, fields as child elements instead of
attributes, booleans as ``True``/``1``: all are read. Nothing here decides
what the message means; ``mapping`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .document import Node
from .errors import AtnaUnmappable

__all__ = ["AuditMessage", "Coded", "ObjectId", "Participant", "read_message"]

_TRUE = frozenset({"true", "1", "yes", "y", "t"})


@dataclass(frozen=True)
class Coded:
    code: str
    system: str | None = None
    display: str | None = None


@dataclass(frozen=True)
class Participant:
    user_id: str | None
    alternative_id: str | None
    has_user_name: bool
    requestor: bool
    roles: tuple[Coded, ...]
    network_access_point: str | None
    user_type: str | None  # DICOM 2019+ UserTypeCode: 1 person, 2 system (or a coded value's code)

    @property
    def role_codes(self) -> frozenset[str]:
        return frozenset(r.code for r in self.roles)


@dataclass(frozen=True)
class AuditSource:
    source_id: str | None
    site_id: str | None
    type_codes: tuple[str, ...]


@dataclass(frozen=True)
class ObjectId:
    """A ParticipantObjectIdentification: its id and codes; free text only as presence flags."""

    index: int
    object_id: str | None
    type_code: str | None
    role: str | None
    lifecycle: str | None
    id_type: Coded | None
    free_text: tuple[str, ...]  # names of the PHI-bearing parts present (Name, Query, Detail, Description)


@dataclass(frozen=True)
class AuditMessage:
    event_id: Coded
    type_codes: tuple[Coded, ...]
    action: str | None
    date_time: str | None
    outcome: str | None
    purposes: tuple[Coded, ...]
    has_outcome_description: bool  # EventOutcomeDescription: free text, never read
    participants: tuple[Participant, ...]
    sources: tuple[AuditSource, ...]
    objects: tuple[ObjectId, ...]


def _first_of(node: Node, *names: str) -> str | None:
    for name in names:
        found = node.value(name)
        if found is not None:
            return found
    return None


def coded(node: Node | None) -> Coded | None:
    """A coded value in either naming; element text when the sender wrote ``<EventID>110110</EventID>``."""
    if node is None:
        return None
    code = _first_of(node, "csd-code", "code") or (node.text if not node.children else None)
    if not code:
        return None
    return Coded(code, _first_of(node, "codeSystemName", "codeSystem"), _first_of(node, "originalText", "displayName"))


def _codes(node: Node, name: str) -> tuple[Coded, ...]:
    return tuple(c for c in (coded(n) for n in node.all(name)) if c is not None)


def _participant(node: Node) -> Participant:
    user_type = node.value("UserTypeCode")
    if user_type is None:
        typed = coded(node.first("UserTypeCode"))
        user_type = typed.code if typed else None
    return Participant(
        user_id=node.value("UserID"),
        alternative_id=node.value("AlternativeUserID"),
        has_user_name=node.value("UserName") is not None,
        requestor=(node.value("UserIsRequestor") or "").casefold() in _TRUE,
        roles=_codes(node, "RoleIDCode"),
        network_access_point=node.value("NetworkAccessPointID"),
        user_type=user_type,
    )


def _audit_source(node: Node) -> AuditSource:
    types: list[str] = []
    # As an attribute: AuditSourceTypeCode="4", or (some RFC 3881 senders) code="4".
    for name in ("auditsourcetypecode", "code"):
        attr = node.attrs.get(name)
        if attr and attr.strip():
            types.append(attr.strip())
    types.extend(c.code for c in _codes(node, "AuditSourceTypeCode"))
    return AuditSource(node.value("AuditSourceID"), node.value("AuditEnterpriseSiteID"), tuple(types))


_FREE_TEXT = (
    "ParticipantObjectName",
    "ParticipantObjectQuery",
    "ParticipantObjectDetail",
    "ParticipantObjectDescription",
)


def _object(index: int, node: Node) -> ObjectId:
    return ObjectId(
        index=index,
        object_id=node.value("ParticipantObjectID"),
        type_code=node.value("ParticipantObjectTypeCode"),
        role=node.value("ParticipantObjectTypeCodeRole"),
        lifecycle=node.value("ParticipantObjectDataLifeCycle"),
        id_type=coded(node.first("ParticipantObjectIDTypeCode")),
        free_text=tuple(name for name in _FREE_TEXT if node.first(name) is not None or name.casefold() in node.attrs),
    )


def read_message(root: Node) -> AuditMessage:
    """The parts of an ``AuditMessage`` root; ``AtnaUnmappable`` when it is another document or has no EventID."""
    if root.key != "auditmessage":
        raise AtnaUnmappable("unknown_schema", "the root element is not AuditMessage (DICOM PS3.15 A.5 or RFC 3881)")
    ident = root.first("EventIdentification")
    if ident is None:
        raise AtnaUnmappable("no_event_identification", "AuditMessage has no EventIdentification element")
    event_id = coded(ident.first("EventID"))
    if event_id is None:
        raise AtnaUnmappable(
            "no_event_identification", "AuditMessage/EventIdentification/EventID is missing or has no code"
        )
    return AuditMessage(
        event_id=event_id,
        type_codes=_codes(ident, "EventTypeCode"),
        action=ident.value("EventActionCode"),
        date_time=ident.value("EventDateTime"),
        outcome=ident.value("EventOutcomeIndicator"),
        purposes=_codes(ident, "PurposeOfUse"),
        has_outcome_description=ident.value("EventOutcomeDescription") is not None,
        participants=tuple(_participant(n) for n in root.all("ActiveParticipant")),
        sources=tuple(_audit_source(n) for n in root.all("AuditSourceIdentification")),
        objects=tuple(_object(i, n) for i, n in enumerate(root.all("ParticipantObjectIdentification"))),
    )
