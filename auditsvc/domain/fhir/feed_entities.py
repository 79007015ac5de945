"""An AuditEvent's entities as the event's patients, data elements and request id.

A patient entity (BALP: type 1 Person, role 1 Patient; or, with no type or
role, a reference to a Patient) gives one event, with every identifier it
carries: ``what.identifier``, ``valueIdentifier`` extensions on the entity
or its reference, a contained Patient's identifiers (``#id``), and the
logical id of an absolute Patient reference (``<base>/Patient``, as the SDK
helpers write it). A relative reference alone is qualified by the source
system, flagged ``base_from_source``. Identifiers are canonicalised by the
SDK's ``IdentifierPolicy`` (placeholders never link).

Other entities say what was accessed: a resource type from ``what``, from a
resource-types ``type``, or, for a query (role 24), the type it searched;
else the entity's ``name`` (or ``what.display``) when it is a resource type,
a path into one or an HL7 v2 field (the facade writes data elements there).
Never an id, free text, or a query's parameters, which may hold PHI. An
X-Request-Id entity (BALP ``XrequestId``) gives the ``message_id``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auditsvc_sdk.helpers import Assumed, IdentifierPolicy

from .feed_reading import (
    BALP_ENTITY_TYPE,
    ENTITY_TYPE,
    OBJECT_ROLE,
    RESOURCE_TYPE_NAMES,
    RESOURCE_TYPES,
    FeedAssumed,
    FeedRefusal,
    codings,
    has_code,
    items,
    obj,
    sub,
    text,
)

__all__ = ["Entities", "PatientEntity", "entities_of", "is_query_entity"]

PATIENT_ROLE = "1"
QUERY_ROLE = "24"
PERSON_TYPE = "1"
REQUEST_ID_TYPE = "XrequestId"
MAX_IDENTIFIERS = 20
MAX_DATA_ELEMENTS = 200

_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_FHIR_ID = r"[A-Za-z0-9\-._]{1,64}"
_ABSOLUTE_PATIENT = re.compile(rf"^(https?://\S+)/Patient/({_FHIR_ID})(?:/_history/\S*)?$")
_RELATIVE_PATIENT = re.compile(rf"^Patient/({_FHIR_ID})(?:/_history/\S*)?$")
# A path into a resource (``Patient.name``, ``Observation.value[x]``) or an
# HL7 v2 field (``PID-5``, ``OBX-5.1``): data element names, not free text.
_ELEMENT_PATH = re.compile(r"^([A-Z][A-Za-z]{0,63})(\.[a-z][A-Za-z0-9]{0,63}(\[x\])?){1,8}$")
_HL7_FIELD = re.compile(r"^[A-Z][A-Z0-9]{2}-\d{1,3}(\.\d{1,3}){0,2}$")
_REFERENCED_TYPE = re.compile(rf"^(?:https?://\S+/)?([A-Z][A-Za-z]{{0,63}})/{_FHIR_ID}(?:/_history/\S*)?$")


@dataclass(frozen=True, slots=True)
class PatientEntity:
    identifiers: list[tuple[str, str]]  # (system, value), canonical, at most 20
    assumed: list[str]


@dataclass(frozen=True, slots=True)
class Entities:
    patients: list[PatientEntity]
    data_elements: list[str] = field(default_factory=list)
    message_id: str | None = None


def is_query_entity(entity: Any) -> bool:
    return isinstance(entity, Mapping) and has_code(entity.get("role"), QUERY_ROLE, OBJECT_ROLE)


def _is_patient(entity: Mapping[str, Any]) -> bool:
    role = entity.get("role")
    if role is not None:
        return has_code(role, PATIENT_ROLE, OBJECT_ROLE)
    if has_code(entity.get("type"), PERSON_TYPE, ENTITY_TYPE):
        return True
    what = sub(entity, "what")
    reference = text(what.get("reference")) or ""
    return entity.get("type") is None and (
        what.get("type") == "Patient" or bool(_RELATIVE_PATIENT.match(reference) or _ABSOLUTE_PATIENT.match(reference))
    )


def entities_of(ae: Mapping[str, Any], source_id: str, policy: IdentifierPolicy, path: str) -> Entities:
    """The patients (at least one, else ``FeedRefusal``), data elements and request id."""
    where_all = f"{path}.entity"
    contained = {
        c["id"]: c
        for c in items(ae.get("contained"), f"{path}.contained")
        if isinstance(c, Mapping) and c.get("resourceType") == "Patient" and isinstance(c.get("id"), str)
    }
    patients: list[PatientEntity] = []
    data: list[str] = []
    message_id = None
    for i, raw in enumerate(items(ae.get("entity"), where_all)):
        where = f"{where_all}[{i}]"
        entity = obj(raw, where) or {}
        if _is_patient(entity):
            patients.append(_patient(entity, where, contained, source_id, policy))
        elif has_code(entity.get("type"), REQUEST_ID_TYPE, BALP_ENTITY_TYPE):
            request_id = text(sub(sub(entity, "what"), "identifier").get("value"))
            if request_id is not None and len(request_id) <= 199:
                message_id = request_id
        else:
            element = _data_element(entity)
            if element is not None and element not in data and len(data) < MAX_DATA_ELEMENTS:
                data.append(element)
    if not patients:
        raise FeedRefusal(
            where_all,
            "names no patient (an entity with type 1 Person and role 1 Patient, or a reference to a Patient): "
            "the service records accesses to a patient's data",
            "business-rule",
            422,
        )
    return Entities(patients, data, message_id)


class _Identifiers:
    """One patient's identifiers as they are met: canonical, distinct, and what was left out."""

    def __init__(self, policy: IdentifierPolicy) -> None:
        self.policy = policy
        self.found: list[tuple[str, str]] = []
        self.assumed: list[str] = []

    def flag(self, code: str) -> None:
        if code not in self.assumed:
            self.assumed.append(code)

    def add(self, ident: Any) -> None:
        if not isinstance(ident, Mapping):
            return
        system, value = text(ident.get("system")), text(ident.get("value"))
        if value is None:
            return self.flag(Assumed.IDENTIFIER_WITHOUT_VALUE)
        if system is None:
            return self.flag(FeedAssumed.IDENTIFIER_WITHOUT_SYSTEM)
        canonical = self.policy.canonical(system, value)
        if canonical is None:
            return self.flag(Assumed.PLACEHOLDER_IDENTIFIER)
        if len(canonical[0]) > 256 or len(canonical[1]) > 128 or "\x00" in canonical[0] + canonical[1]:
            return self.flag(Assumed.UNUSABLE_IDENTIFIER)
        if canonical not in self.found:
            self.found.append(canonical)
        return None


def _patient(
    entity: Mapping[str, Any],
    where: str,
    contained: Mapping[str, Mapping[str, Any]],
    source_id: str,
    policy: IdentifierPolicy,
) -> PatientEntity:
    what = obj(entity.get("what"), f"{where}.what") or {}
    ids = _Identifiers(policy)
    for ident in items(what.get("identifier"), f"{where}.what.identifier"):
        ids.add(ident)
    for ext in [*items(entity.get("extension"), f"{where}.extension"), *items(what.get("extension"), where)]:
        if isinstance(ext, Mapping):
            ids.add(ext.get("valueIdentifier"))
    reference = text(what.get("reference")) or ""
    logical = None
    if reference.startswith("#") and reference[1:] in contained:
        for ident in items(contained[reference[1:]].get("identifier"), f"{where}.what.reference"):
            ids.add(ident)
    elif m := _ABSOLUTE_PATIENT.match(reference):
        ids.add({"system": f"{m.group(1)}/Patient", "value": m.group(2)})
    elif m := _RELATIVE_PATIENT.match(reference):
        logical = m.group(1)
    if not ids.found and logical is not None:
        # No server base known: the source system qualifies the logical id (as the SDK helpers do).
        ids.found.append((f"{source_id}/Patient", logical))
        ids.flag(Assumed.BASE_FROM_SOURCE)
    if not ids.found:
        raise FeedRefusal(
            f"{where}.what.identifier",
            "the patient entity carries no usable identifier (what.identifier with system and value, "
            "a Patient reference, or a contained Patient with identifiers)",
            "required",
            422,
        )
    if len(ids.found) > MAX_IDENTIFIERS:
        ids.flag(FeedAssumed.IDENTIFIERS_OMITTED)
    return PatientEntity(ids.found[:MAX_IDENTIFIERS], ids.assumed)


def _data_element(entity: Mapping[str, Any]) -> str | None:
    """What an entity says was accessed: a resource type, never an id or a query's parameters."""
    what = sub(entity, "what")
    m = _REFERENCED_TYPE.match(text(what.get("reference")) or "")
    if m:
        return m.group(1)
    if isinstance(what.get("type"), str) and _RESOURCE_TYPE.match(what["type"]):
        return str(what["type"])
    for coding in codings(entity.get("type")):
        code = coding.get("code")
        if coding.get("system") == RESOURCE_TYPES and isinstance(code, str) and _RESOURCE_TYPE.match(code):
            return code
    if is_query_entity(entity):
        return _queried_type(entity) or "query"
    for named in (text(entity.get("name")), text(what.get("display"))):
        if named is not None and _is_element_name(named):
            return named
    return None


def _is_element_name(value: str) -> bool:
    """A data element's name (as the facade writes them in ``entity.name``),
    never free text that may name a person: a FHIR resource type, a path into
    one, or an HL7 v2 field."""
    if value in RESOURCE_TYPE_NAMES or _HL7_FIELD.match(value):
        return True
    m = _ELEMENT_PATH.match(value)
    return m is not None and m.group(1) in RESOURCE_TYPE_NAMES


def _queried_type(entity: Mapping[str, Any]) -> str | None:
    """The resource type a query entity searched (``entity.query`` is the raw request, base64)."""
    texts = []
    if isinstance(entity.get("query"), str):
        with contextlib.suppress(binascii.Error, ValueError):
            texts.append(base64.b64decode(entity["query"]).decode("utf-8", "replace"))
    if isinstance(entity.get("description"), str):
        texts.append(entity["description"])
    for query in texts:
        words = query.split()
        if len(words) > 1 and words[0].upper() in ("GET", "POST"):
            words = words[1:]
        segments = (words[0] if words else "").split("?", 1)[0].rstrip("/").split("/")
        if segments[-1] == "_search":
            segments.pop()
        if segments and _RESOURCE_TYPE.match(segments[-1]):
            return segments[-1]
    return None
