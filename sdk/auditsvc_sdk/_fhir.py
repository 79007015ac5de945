"""PHI access events from FHIR R4 resources and Bundles: ``events_from_fhir``.

One event per patient whose data the input carries, built by walking plain
JSON (no FHIR model library). The rules, in the order they apply:

Whose data is it
    A ``Patient`` resource is its own patient. Any other resource belongs to
    the patients named by its top-level ``subject``, ``patient``,
    ``beneficiary`` (Coverage), ``for`` (Task), ``individual``
    (ResearchSubject) or ``candidate`` (EnrollmentRequest), and by
    ``Appointment.participant[].actor`` and ``AppointmentResponse.actor``; a
    list of references (``Account.subject``) names each. ``who`` and nested
    ``individual``/``actor`` elements elsewhere (Provenance, AuditEvent,
    Encounter.participant) name who acted, not whose data it is, and are not
    read. A reference that names a Group, Location, Device, Practitioner or
    any other non-Patient type is not a patient: that resource contributes no
    event and is counted in ``resources_without_patient``. Patient.link is not
    followed: linked records stay separate patients.

How a reference resolves
    ``Patient/123`` and ``https://x/fhir/Patient/123`` (``/_history/n``
    ignored), ``urn:uuid:``/``urn:oid:`` references looked up by
    ``fullUrl`` in the enclosing Bundle, ``#p1`` looked up in the
    resource's ``contained``, conditional references
    ``Patient?identifier=system|value`` (transactions), and logical
    references ``{"identifier": {...}}``. A relative reference is resolved
    against the base of the referencing entry's ``fullUrl`` (the FHIR
    Bundle rule), else ``fhir_base``; it matches a Patient entry by that full
    URL or, failing that, by type and id within the same Bundle. A logical
    reference with no ``type`` is taken to be the patient: in the fields
    above it overwhelmingly is, and an unrecorded access is worse than an
    unlinked identifier; give ``type`` to say otherwise.

The patient's identifiers
    Every ``Patient.identifier`` with a system and a value (one with a value
    but no system is ambiguous across facilities and is skipped; one with no
    value is an error), then the logical id as ``{"system": "<base>/Patient",
    "value": "<id>"}`` where ``<base>`` is the server base (from ``fullUrl``,
    an absolute reference, or ``fhir_base``), then identifiers carried by
    references. So the Patient resource and every reference to it give the
    very same identifier, and all of them resolve to one patient. Without a
    known base a logical id is not used: ``Patient|123`` from two servers
    would link two people. Contained patients have no logical id.
    Everything that shares an identifier or resolves to the same resource
    is one patient. Identifiers keep the order they were met in; at most 20
    are kept (the model's bound) and ``identifiers_omitted`` counts the rest. A patient
    left with no identifier at all is an error naming where it was found.

What was accessed (``data_elements``)
    The patient's resource types in first-seen order, then (unless
    ``element_names=False``) the top-level element names present, as
    ``Observation.status``; choice elements as ``Observation.value[x]``,
    ``_birthDate`` as ``Patient.birthDate``; ``id``, ``meta``,
    ``implicitRules``, ``language`` and ``contained`` are not data. Contained
    resources count as accessed with their container. Entries with no
    resource (a delete in a transaction or history Bundle) whose
    ``request.url``, ``response.location`` or ``fullUrl`` names a Patient
    count as ``Patient``. At most 200 strings: all types first, then element
    names until the bound; ``data_elements_omitted`` counts the rest.

Bundles
    Every type (searchset, collection, transaction, batch, document,
    message, history, and their responses), nested Bundles included (each
    resolves references within itself). One event per patient, in the order
    patients are first met. ``action`` is the caller's for every event: a
    transaction's per-entry methods are not split into several events.

The events
    ``message_id`` is the Bundle's or the resource's id unless given (never
    a Patient resource's own id: that is a patient identifier, and
    ``message_id`` is stored in clear);
    ``event_type`` is ``fhir-rest`` unless given; attributes are
    ``resource_type`` (the top-level type), ``resource_count`` (resources of
    this patient), ``patient_count`` (events made from this input) and, for a
    Bundle, ``bundle_type``, ``entry_count`` (top-level entries) and
    ``resources_without_patient``; the caller's ``attributes`` are added last
    and win.

No patient
    Input that names no patient (a Practitioner, a CapabilityStatement, an
    empty searchset, a Bundle of Group-subject resources) is not a PHI
    access of anyone's record: the result is an empty list, not an error.

Errors
    Bad input raises ``FHIRError`` (a ``ValueError``) whose message names the
    JSON path (``entry[3].resource.subject``) and the kind of problem, never
    an identifier value, a name or any other content of the input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ._event import MAX_DATA_ELEMENTS, MAX_IDENTIFIERS, Action, Actor, Outcome, PhiAccess, SystemRef
from ._exceptions import AuditError
from ._identifiers import IdentifierPolicy
from ._results import Cause, HelperResult, Refusal, result

__all__ = ["FHIRError", "events_from_fhir", "read_fhir"]

# Top-level elements that name the patient whose record a resource is part of.
PATIENT_FIELDS = ("subject", "patient", "beneficiary", "for", "individual", "candidate")
# Where the patient sits deeper: (resource type, list element, reference element).
_NESTED_PATIENT_FIELDS = {"Appointment": ("participant", "actor"), "AppointmentResponse": (None, "actor")}
_NOT_DATA = frozenset({"resourceType", "id", "meta", "implicitRules", "language", "contained"})
# R4 choice elements that appear at the top level of clinical resources.
_CHOICE_PREFIXES = frozenset(
    {
        "value", "effective", "onset", "abatement", "deceased", "multipleBirth", "medication", "occurrence",
        "performed", "reported", "born", "age", "timing", "serviced", "product", "collected", "allowed", "used",
    }
)  # fmt: skip
_DATATYPES = frozenset(
    {
        "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id", "Instant", "Integer",
        "Markdown", "Oid", "PositiveInt", "String", "Time", "UnsignedInt", "Uri", "Url", "Uuid", "Address", "Age",
        "Annotation", "Attachment", "CodeableConcept", "Coding", "ContactPoint", "Count", "Distance", "Duration",
        "HumanName", "Identifier", "Money", "Period", "Quantity", "Range", "Ratio", "Reference", "SampledData",
        "Signature", "Timing", "Dosage",
    }
)  # fmt: skip
_UPPER = re.compile(r"[A-Z]")
_ELEMENT = re.compile(r"^_?([a-z][A-Za-z0-9]{0,59})$")
_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
_RELATIVE = re.compile(rf"^([A-Z][A-Za-z]{{0,63}})/({_FHIR_ID})(?:/_history/{_FHIR_ID})?$")
_ABSOLUTE = re.compile(rf"^(https?://[^\s?#]+)/([A-Z][A-Za-z]{{0,63}})/({_FHIR_ID})(?:/_history/{_FHIR_ID})?$")
_CONDITIONAL = re.compile(r"^([A-Z][A-Za-z]{0,63})\?(.*)$")
_MAX_BUNDLE_DEPTH = 16
_MAX_SYSTEM = 256
_MAX_VALUE = 128


class FHIRError(AuditError, ValueError):
    """The input is not usable FHIR R4 JSON. ``path`` is where (``entry[3].resource.subject``,
    empty for the whole input); the message never contains values from the input."""

    def __init__(self, path: str, problem: str, cause: str = Cause.BAD_ENTRY) -> None:
        self.path = path
        self.problem = problem
        self.cause = cause
        super().__init__(f"{path or '(root)'}: {problem}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@dataclass
class _Node:
    """One patient as first met; nodes that share an identifier are merged."""

    path: str
    identifiers: list[tuple[str, str]] = field(default_factory=list)
    types: dict[str, None] = field(default_factory=dict)
    elements: dict[str, dict[str, None]] = field(default_factory=dict)
    resources: int = 0


# A Bundle entry's resource, its path, and the server base its id belongs to (None: not a server id).
_Indexed = tuple[Mapping[str, Any], str, str | None]
# What a reference string resolves to when it is not a patient node.
_NOT_PATIENT = -1
_UNRESOLVED = -2


@dataclass
class _Scope:
    """What references resolve against: one Bundle's entries (or nothing), and the referencing entry's base."""

    by_full_url: dict[str, _Indexed] = field(default_factory=dict)
    by_type_id: dict[tuple[str, str], _Indexed | None] = field(default_factory=dict)
    base: str | None = None
    # The Bundle entry (or top-level resource) whose `contained` a `#x` reference resolves in.
    container: Mapping[str, Any] | None = None
    container_path: str = ""


class _Walker:
    def __init__(self, fhir_base: str | None, element_names: bool) -> None:
        self.fhir_base = fhir_base.rstrip("/") if fhir_base else None
        self.element_names = element_names
        self.nodes: list[_Node] = []
        self.parent: list[int] = []
        self.by_identifier: dict[tuple[str, str], int] = {}
        self.by_resource: dict[int, int] = {}  # id() of a Patient resource -> node
        self.by_logical: dict[tuple[str, str], int] = {}  # (base or "", logical id) of a Patient -> node
        self.keep_alive: list[Mapping[str, Any]] = []  # resources keyed by id() must outlive the walk
        self.without_patient = 0

    # -- patients -------------------------------------------------------------------------------------------

    def find(self, n: int) -> int:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def _union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The earlier node stays the root, so patients keep the order they were first met in.
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo

    def _new_node(self, path: str) -> int:
        self.nodes.append(_Node(path))
        self.parent.append(len(self.parent))
        return len(self.nodes) - 1

    def _add_identifier(self, n: int, system: str, value: str, path: str) -> None:
        system, value = system.strip(), value.strip()
        if not system or len(system) > _MAX_SYSTEM or "\x00" in system:
            raise FHIRError(path, f"identifier system must be 1 to {_MAX_SYSTEM} characters without NUL")
        if not value or len(value) > _MAX_VALUE or "\x00" in value:
            raise FHIRError(path, f"identifier value must be 1 to {_MAX_VALUE} characters without NUL")
        key = (system, value)
        if key not in self.nodes[n].identifiers:
            self.nodes[n].identifiers.append(key)
        other = self.by_identifier.setdefault(key, n)
        self._union(n, other)

    def _identifier(self, n: int, ident: Any, path: str) -> None:
        if not isinstance(ident, Mapping):
            raise FHIRError(path, "identifier must be an object")
        system, value = ident.get("system"), ident.get("value")
        if value is None or (isinstance(value, str) and not value.strip()):
            raise FHIRError(path, "identifier has no value")
        if not isinstance(value, str):
            raise FHIRError(_join(path, "value"), "identifier value must be a string")
        if system is None or (isinstance(system, str) and not system.strip()):
            return  # a bare value means nothing outside the facility that assigned it
        if not isinstance(system, str):
            raise FHIRError(_join(path, "system"), "identifier system must be a string")
        self._add_identifier(n, system, value, path)

    def _logical_id(self, n: int, base: str | None, rid: str, path: str) -> None:
        if base:
            self._add_identifier(n, f"{base}/Patient", rid, path)

    def patient_of_resource(self, resource: Mapping[str, Any], path: str, base: str | None, contained: bool) -> int:
        """The node of a Patient resource in the input (created on first use)."""
        n = self.by_resource.get(id(resource))
        if n is not None:
            return n
        n = self._new_node(path)
        self.by_resource[id(resource)] = n
        self.keep_alive.append(resource)
        idents = resource.get("identifier", [])
        if not isinstance(idents, list):
            raise FHIRError(_join(path, "identifier"), "must be a list")
        for i, ident in enumerate(idents):
            self._identifier(n, ident, _join(_join(path, "identifier"), i))
        rid = resource.get("id")
        if rid is not None and not contained:
            if not isinstance(rid, str) or not re.fullmatch(_FHIR_ID, rid):
                raise FHIRError(_join(path, "id"), "is not a FHIR id")
            self._logical_id(n, base, rid, path)
            other = self.by_logical.setdefault((base or "", rid), n)
            self._union(n, other)
        return n

    def _patient_by_id(self, base: str | None, rid: str, scope: _Scope, path: str) -> int:
        """The node of `Patient/rid` on server `base`: an entry of the Bundle when there is one."""
        hit = scope.by_full_url.get(f"{base}/Patient/{rid}") if base else None
        if hit is None:
            hit = scope.by_type_id.get(("Patient", rid))
            # By id alone only when the servers cannot differ: Patient/123 here and there are two people.
            if hit is not None and base and hit[2] and hit[2] != base:
                hit = None
        if hit is not None:
            return self.patient_of_resource(hit[0], hit[1], hit[2], False)
        n = self.by_logical.get((base or "", rid))
        if n is None:
            n = self._new_node(path)
            self.by_logical[(base or "", rid)] = n
            self._logical_id(n, base, rid, path)
        return n

    def resolve(self, ref: Any, path: str, scope: _Scope) -> int | None:
        """The patient node a Reference names, or None when it names something else."""
        if not isinstance(ref, Mapping):
            raise FHIRError(path, "must be a Reference object")
        reference, type_hint, ident = ref.get("reference"), ref.get("type"), ref.get("identifier")
        if type_hint is not None and not isinstance(type_hint, str):
            raise FHIRError(_join(path, "type"), "must be a string")
        n: int | None = None
        if reference is not None:
            if not isinstance(reference, str) or not reference.strip():
                raise FHIRError(_join(path, "reference"), "must be a non-empty string")
            found = self._reference(reference.strip(), _join(path, "reference"), scope, type_hint)
            if found == _NOT_PATIENT:
                return None
            n = None if found == _UNRESOLVED else found
        elif type_hint is not None and type_hint != "Patient":
            return None
        if ident is not None:
            if n is None:
                n = self._new_node(path)
            self._identifier(n, ident, _join(path, "identifier"))
        if n is None:
            raise FHIRError(path, "names a patient but has neither a resolvable reference nor an identifier")
        return n

    def _reference(self, reference: str, path: str, scope: _Scope, type_hint: str | None) -> int:
        """A node, ``_NOT_PATIENT``, or ``_UNRESOLVED`` (may be a patient, but nothing here says who)."""
        if reference.startswith("#"):
            target = _contained(scope.container, reference[1:])
            if target is None:
                raise FHIRError(path, "contained reference does not resolve")
            resource, where = target
            if resource.get("resourceType") != "Patient":
                return _NOT_PATIENT
            return self.patient_of_resource(resource, _join(scope.container_path, where), None, True)
        if reference.startswith("urn:"):
            hit = scope.by_full_url.get(reference)
            if hit is None:
                if type_hint is not None and type_hint != "Patient":
                    return _NOT_PATIENT
                return _UNRESOLVED  # an identifier on the Reference may still name the patient
            if hit[0].get("resourceType") != "Patient":
                return _NOT_PATIENT
            return self.patient_of_resource(hit[0], hit[1], hit[2], False)
        m = _ABSOLUTE.match(reference)
        if m:
            base, rtype, rid = m.group(1), m.group(2), m.group(3)
            if rtype != "Patient":
                return _NOT_PATIENT
            return self._patient_by_id(base, rid, scope, path)
        m = _RELATIVE.match(reference)
        if m:
            if m.group(1) != "Patient":
                return _NOT_PATIENT
            return self._patient_by_id(scope.base, m.group(2), scope, path)
        m = _CONDITIONAL.match(reference)
        if m:
            if m.group(1) != "Patient":
                return _NOT_PATIENT
            n = self._new_node(path)
            for key, val in parse_qsl(m.group(2)):
                system, bar, value = val.partition("|")
                if key == "identifier" and bar and system and value:
                    self._add_identifier(n, system, value, path)
            return n
        raise FHIRError(path, "is not a FHIR reference (Type/id, absolute URL, urn: or #contained)")

    # -- resources ------------------------------------------------------------------------------------------

    def resource(self, resource: Any, path: str, scope: _Scope, depth: int = 0) -> None:
        rtype = _resource_type(resource, path)
        if rtype == "Bundle":
            self.bundle(resource, path, depth + 1)
            return
        scope = _Scope(scope.by_full_url, scope.by_type_id, scope.base, resource, path)
        patients: list[int] = []
        if rtype == "Patient":
            patients.append(self.patient_of_resource(resource, path, scope.base, False))
        for name in PATIENT_FIELDS:
            patients += self._references(resource.get(name), _join(path, name), scope)
        nested = _NESTED_PATIENT_FIELDS.get(rtype)
        if nested is not None:
            outer, inner = nested
            if outer is None:
                patients += self._references(resource.get(inner), _join(path, inner), scope)
            else:
                parts = resource.get(outer, [])
                if not isinstance(parts, list):
                    raise FHIRError(_join(path, outer), "must be a list")
                for i, part in enumerate(parts):
                    if isinstance(part, Mapping):
                        where = _join(_join(path, outer), i)
                        patients += self._references(part.get(inner), _join(where, inner), scope)
        if not patients:
            self.without_patient += 1
            return
        accessed = [(rtype, resource)]
        contained = resource.get("contained", [])
        if not isinstance(contained, list):
            raise FHIRError(_join(path, "contained"), "must be a list")
        for i, inner_resource in enumerate(contained):
            accessed.append((_resource_type(inner_resource, _join(_join(path, "contained"), i)), inner_resource))
        for n in dict.fromkeys(patients):
            node = self.nodes[n]
            node.resources += 1
            for t, r in accessed:
                self._accessed(node, t, r)

    def _references(self, value: Any, path: str, scope: _Scope) -> list[int]:
        if value is None:
            return []
        refs: Iterable[tuple[str, Any]]
        refs = ((_join(path, i), v) for i, v in enumerate(value)) if isinstance(value, list) else [(path, value)]
        found = []
        for where, ref in refs:
            n = self.resolve(ref, where, scope)
            if n is not None:
                found.append(n)
        return found

    def _accessed(self, node: _Node, rtype: str, resource: Mapping[str, Any] | None) -> None:
        node.types[rtype] = None
        if not self.element_names or resource is None:
            return
        names = node.elements.setdefault(rtype, {})
        for key in resource:
            m = _ELEMENT.match(key) if isinstance(key, str) else None
            if m is None or key in _NOT_DATA:
                continue
            names[f"{rtype}.{_element_name(m.group(1))}"] = None

    def bundle(self, bundle: Mapping[str, Any], path: str, depth: int) -> None:
        if depth > _MAX_BUNDLE_DEPTH:
            raise FHIRError(path, f"Bundles are nested more than {_MAX_BUNDLE_DEPTH} deep")
        entries = _entries(bundle, path)
        scope = _Scope()
        # 1. Index the entries, so a reference resolves whichever comes first.
        for i, entry in enumerate(entries):
            where = _join(_join(path, "entry"), i)
            resource = entry.get("resource")
            if resource is None:
                continue
            rpath = _join(where, "resource")
            rtype = _resource_type(resource, rpath)
            full_url = entry.get("fullUrl")
            indexed = (resource, rpath, self._entry_base(entry, where))
            if isinstance(full_url, str):
                scope.by_full_url[full_url.strip()] = indexed
                m = _ABSOLUTE.match(full_url.strip())
                if m:  # a versioned fullUrl still names the resource
                    scope.by_full_url[f"{m.group(1)}/{m.group(2)}/{m.group(3)}"] = indexed
            rid = resource.get("id")
            if isinstance(rid, str):
                key = (rtype, rid)
                # Two entries with one type and id (history, or two servers): resolve neither by id alone.
                scope.by_type_id[key] = None if key in scope.by_type_id else indexed
        # 2. Walk them.
        for i, entry in enumerate(entries):
            where = _join(_join(path, "entry"), i)
            entry_scope = _Scope(scope.by_full_url, scope.by_type_id, self._entry_base(entry, where))
            resource = entry.get("resource")
            if resource is not None:
                self.resource(resource, _join(where, "resource"), entry_scope, depth)
            else:
                self._entry_without_resource(entry, where, entry_scope)

    def _entry_base(self, entry: Mapping[str, Any], path: str) -> str | None:
        """The server base of an entry: its RESTful fullUrl's, none for a ``urn:`` (the id is not yet the
        server's), else ``fhir_base``."""
        full_url = entry.get("fullUrl")
        if full_url is None:
            return self.fhir_base
        if not isinstance(full_url, str):
            raise FHIRError(_join(path, "fullUrl"), "must be a string")
        m = _ABSOLUTE.match(full_url.strip())
        if m:
            return m.group(1)
        return None if full_url.strip().startswith("urn:") else self.fhir_base

    def _entry_without_resource(self, entry: Mapping[str, Any], path: str, scope: _Scope) -> None:
        request, response = entry.get("request"), entry.get("response")
        candidates = [
            (_join(path, "request.url"), request.get("url") if isinstance(request, Mapping) else None),
            (_join(path, "response.location"), response.get("location") if isinstance(response, Mapping) else None),
            (_join(path, "fullUrl"), entry.get("fullUrl")),
        ]
        for where, url in candidates:
            if not isinstance(url, str) or not url.strip():
                continue
            url = url.strip()
            # An operation, a search or a bare type is not one patient's record.
            conditional = _CONDITIONAL.match(url)
            if conditional:
                # Only a conditional URL by identifier names one patient; `Patient?name=...` is a search.
                if not any(k == "identifier" and "|" in v for k, v in parse_qsl(conditional.group(2))):
                    continue
            elif not (_RELATIVE.match(url) or _ABSOLUTE.match(url) or url.startswith("urn:")):
                continue
            n = self._reference(url, where, scope, None)
            if n < 0:
                break
            node = self.nodes[n]
            node.resources += 1
            self._accessed(node, "Patient", None)
            return
        self.without_patient += 1

    # -- events ---------------------------------------------------------------------------------------------

    def patients(self) -> list[tuple[list[tuple[str, str]], list[str], int, int, int]]:
        """(identifiers, data_elements, resources, identifiers omitted, elements omitted) per patient."""
        groups: dict[int, list[_Node]] = {}
        for n, node in enumerate(self.nodes):
            groups.setdefault(self.find(n), []).append(node)
        out = []
        for nodes in groups.values():
            idents = list(dict.fromkeys(i for node in nodes for i in node.identifiers))
            types = list(dict.fromkeys(t for node in nodes for t in node.types))
            resources = sum(node.resources for node in nodes)
            if not types:
                continue  # a reference that resolved to nothing accessed (cannot happen today; kept safe)
            if not idents:
                raise FHIRError(
                    nodes[0].path,
                    "the patient has no identifier with a system and a value, and no server base to qualify "
                    "its logical id (pass fhir_base)",
                )
            # Each type, then its element names: Observation, Observation.code, ..., Condition, ...
            # Types always fit (R4 has fewer than 200); element names fill the room left.
            room = MAX_DATA_ELEMENTS - len(types)
            elements = [e for t in types for e in sorted({e for node in nodes for e in node.elements.get(t, {})})]
            kept = set(elements[:room])
            data = [x for t in types for x in (t, *(e for e in elements if e in kept and e.startswith(t + ".")))]
            out.append(
                (
                    idents[:MAX_IDENTIFIERS],
                    data,
                    resources,
                    max(0, len(idents) - MAX_IDENTIFIERS),
                    max(0, len(elements) - room),
                )
            )
        return out


def _element_name(name: str) -> str:
    """``valueQuantity`` -> ``value[x]``, ``multipleBirthInteger`` -> ``multipleBirth[x]``; others unchanged."""
    for m in _UPPER.finditer(name):
        prefix = name[: m.start()]
        if prefix in _CHOICE_PREFIXES and name[m.start() :] in _DATATYPES:
            return f"{prefix}[x]"
    return name


def _resource_type(resource: Any, path: str) -> str:
    if not isinstance(resource, Mapping):
        raise FHIRError(path, "must be a JSON object (a FHIR resource)")
    rtype = resource.get("resourceType")
    if rtype is None:
        raise FHIRError(path, "has no resourceType")
    if not isinstance(rtype, str) or not _TYPE.match(rtype):
        raise FHIRError(_join(path, "resourceType"), "is not a FHIR resource type name")
    return rtype


def _entries(bundle: Mapping[str, Any], path: str) -> list[Mapping[str, Any]]:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FHIRError(_join(path, "entry"), "must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise FHIRError(_join(_join(path, "entry"), i), "must be an object")
    return entries


def _contained(container: Mapping[str, Any] | None, local_id: str) -> tuple[Mapping[str, Any], str] | None:
    contained = container.get("contained", []) if container is not None else []
    if not isinstance(contained, list):
        return None
    for i, resource in enumerate(contained):
        if isinstance(resource, Mapping) and resource.get("id") == local_id:
            return resource, f"contained[{i}]"
    return None


def _load(resource_or_bundle: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(resource_or_bundle, Mapping):
        return resource_or_bundle
    if isinstance(resource_or_bundle, str | bytes | bytearray | memoryview):
        try:
            data = orjson.loads(resource_or_bundle)
        except orjson.JSONDecodeError as exc:
            # Not the decoder's message: the document is PHI, and position is all a caller needs.
            raise FHIRError("", f"not valid JSON (line {exc.lineno}, column {exc.colno})", Cause.NOT_JSON) from None
        if not isinstance(data, dict):
            raise FHIRError("", "must be a JSON object (a FHIR resource or Bundle)", Cause.NOT_FHIR)
        return data
    raise FHIRError("", "must be a mapping, or JSON text as str or bytes")


def read_fhir(
    resource_or_bundle: Mapping[str, Any] | str | bytes,
    *,
    source: SystemRef | Mapping[str, Any] | str,
    destination: SystemRef | Mapping[str, Any] | str,
    actor: Actor | Mapping[str, Any],
    action: Action | str = Action.READ,
    event_type: str = "fhir-rest",
    purpose_of_use: str | None = None,
    occurred_at: datetime | str | None = None,
    outcome: Outcome | int = Outcome.SUCCESS,
    message_id: str | None = None,
    attributes: Mapping[str, str | int | bool] | None = None,
    fhir_base: str | None = None,
    element_names: bool = True,
    identifier_policy: IdentifierPolicy | None = None,
) -> HelperResult:
    """PHI access events of a FHIR R4 resource or Bundle, best effort: one per patient whose data it carries.

    Every patient named yields an event; what had to be assumed is flagged
    in ``attributes["assumed"]`` (:class:`Assumed`). A Bundle entry that
    cannot be read is listed in ``refusals`` (its top-level entry number as
    ``index``) while the other entries still yield their events; input that
    names no patient is refused with cause ``no_patient``. Never raises for
    the content of the input. ``source`` and ``destination`` are
    ``SystemRef``s, their JSON objects, or bare system ids; ``fhir_base`` is
    the server base URL (``https://x/fhir``) used to turn relative
    references and logical ids into identifiers. Every event shares
    ``occurred_at`` (default: now). See the module docstring for the rules.
    """
    try:
        found = _events(
            resource_or_bundle,
            source=source,
            destination=destination,
            actor=actor,
            action=action,
            event_type=event_type,
            purpose_of_use=purpose_of_use,
            occurred_at=occurred_at,
            outcome=outcome,
            message_id=message_id,
            attributes=attributes,
            fhir_base=fhir_base,
            element_names=element_names,
        )
    except FHIRError as exc:
        return HelperResult(refusals=(Refusal(None, exc.cause, exc.problem, exc.path),), units=1)
    if not found:
        return HelperResult(refusals=(Refusal(None, Cause.NO_PATIENT, "the input names no patient"),), units=1)
    return result([(0, e) for e in found], [], 1)


def events_from_fhir(
    resource_or_bundle: Mapping[str, Any] | str | bytes,
    *,
    source: SystemRef | Mapping[str, Any] | str,
    destination: SystemRef | Mapping[str, Any] | str,
    actor: Actor | Mapping[str, Any],
    action: Action | str = Action.READ,
    event_type: str = "fhir-rest",
    purpose_of_use: str | None = None,
    occurred_at: datetime | str | None = None,
    outcome: Outcome | int = Outcome.SUCCESS,
    message_id: str | None = None,
    attributes: Mapping[str, str | int | bool] | None = None,
    fhir_base: str | None = None,
    element_names: bool = True,
    identifier_policy: IdentifierPolicy | None = None,
) -> list[PhiAccess]:
    """The events of :func:`read_fhir`: an empty list when the input names no patient,
    :class:`FHIRError` when nothing in it could be read. Kept for existing callers; refusals of
    single Bundle entries are reported only by :func:`read_fhir`."""
    found = read_fhir(
        resource_or_bundle,
        source=source,
        destination=destination,
        actor=actor,
        action=action,
        event_type=event_type,
        purpose_of_use=purpose_of_use,
        occurred_at=occurred_at,
        outcome=outcome,
        message_id=message_id,
        attributes=attributes,
        fhir_base=fhir_base,
        element_names=element_names,
        identifier_policy=identifier_policy,
    )
    if not found.events:
        refused = [r for r in found.refusals if r.cause != Cause.NO_PATIENT]
        if refused:
            raise FHIRError(refused[0].where, refused[0].message, refused[0].cause)
    return list(found.events)


def _events(
    resource_or_bundle: Mapping[str, Any] | str | bytes,
    *,
    source: SystemRef | Mapping[str, Any] | str,
    destination: SystemRef | Mapping[str, Any] | str,
    actor: Actor | Mapping[str, Any],
    action: Action | str = Action.READ,
    event_type: str = "fhir-rest",
    purpose_of_use: str | None = None,
    occurred_at: datetime | str | None = None,
    outcome: Outcome | int = Outcome.SUCCESS,
    message_id: str | None = None,
    attributes: Mapping[str, str | int | bool] | None = None,
    fhir_base: str | None = None,
    element_names: bool = True,
) -> list[PhiAccess]:
    data = _load(resource_or_bundle)
    rtype = _resource_type(data, "")
    walker = _Walker(fhir_base, element_names)
    if rtype == "Bundle":
        walker.bundle(data, "", 1)
    else:
        walker.resource(data, "", _Scope(base=walker.fhir_base))
    patients = walker.patients()
    if not patients:
        return []

    def system(ref: SystemRef | Mapping[str, Any] | str) -> SystemRef:
        if isinstance(ref, SystemRef):
            return ref
        return SystemRef(system_id=ref) if isinstance(ref, str) else SystemRef.model_validate(ref)

    common: dict[str, Any] = {
        "occurred_at": occurred_at if occurred_at is not None else datetime.now(UTC),
        "action": action,
        "event_type": event_type,
        "source": system(source),
        "destination": system(destination),
        "actor": actor if isinstance(actor, Actor) else Actor.model_validate(actor),
        "purpose_of_use": purpose_of_use,
        "outcome": outcome,
    }
    # A Patient's own id is a patient identifier (it is among the event's
    # identifiers, sealed at rest); message_id is stored in clear, so it is
    # never taken from one.
    if (
        message_id is None
        and rtype != "Patient"
        and isinstance(data.get("id"), str)
        and re.fullmatch(_FHIR_ID, data["id"])
    ):
        message_id = data["id"]
    base_attributes: dict[str, str | int | bool] = {"resource_type": rtype}
    if rtype == "Bundle":
        if isinstance(data.get("type"), str):
            base_attributes["bundle_type"] = data["type"]
        base_attributes["entry_count"] = len(data.get("entry", []))
        base_attributes["resources_without_patient"] = walker.without_patient
    base_attributes["patient_count"] = len(patients)
    events = []
    for identifiers, data_elements, resources, idents_omitted, elements_omitted in patients:
        attrs = dict(base_attributes, resource_count=resources)
        if idents_omitted:
            attrs["identifiers_omitted"] = idents_omitted
        if elements_omitted:
            attrs["data_elements_omitted"] = elements_omitted
        attrs.update(attributes or {})
        events.append(
            PhiAccess(
                **common,
                patient={"identifiers": [{"system": s, "value": v} for s, v in identifiers]},
                data_elements=data_elements,
                message_id=message_id,
                attributes=attrs,
            )
        )
    return events
