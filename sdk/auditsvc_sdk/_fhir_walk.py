"""Walking FHIR R4 JSON for patients: resources, Bundles, Parameters, references, identifiers.

The rules are in the module docstring of ``_fhir``. The walk never gives up
on a whole input for one bad part: a Bundle entry or Parameters part that
cannot be read is recorded as a refusal and the walk goes on; an identifier
that cannot be used is left out and flagged on its patient; a reference in a
patient field that resolves to nothing known still names a patient, who is
recorded unlinked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ._event import MAX_DATA_ELEMENTS, MAX_IDENTIFIERS
from ._fhir_json import TYPE, FHIRError, element_name, resource_type
from ._identifiers import IdentifierPolicy
from ._results import Assumed

__all__ = ["FHIR_ID", "Patient", "Walker"]

# Top-level elements that name the patient whose record a resource is part of.
PATIENT_FIELDS = ("subject", "patient", "beneficiary", "for", "individual", "candidate")
# Where the patient sits deeper: (resource type, list element, reference element).
_NESTED_PATIENT_FIELDS = {"Appointment": ("participant", "actor"), "AppointmentResponse": (None, "actor")}
_NOT_DATA = frozenset({"resourceType", "id", "meta", "implicitRules", "language", "contained"})
_ELEMENT = re.compile(r"^_?([a-z][A-Za-z0-9]{0,59})$")
# R4 ids are [A-Za-z0-9-.]; servers also hand out ids with "_", and a reference to one is still theirs.
FHIR_ID = r"[A-Za-z0-9\-._]{1,64}"
_RELATIVE = re.compile(rf"^([A-Z][A-Za-z]{{0,63}})/({FHIR_ID})(?:/_history/{FHIR_ID})?$")
_ABSOLUTE = re.compile(rf"^(https?://[^\s?#]+)/([A-Z][A-Za-z]{{0,63}})/({FHIR_ID})(?:/_history/{FHIR_ID})?$")
_CONDITIONAL = re.compile(r"^([A-Z][A-Za-z]{0,63})\?(.*)$")
_MAX_DEPTH = 16
_MAX_SYSTEM = 256
_MAX_VALUE = 128


def join(path: str, key: str | int) -> str:
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
    assumed: list[str] = field(default_factory=list)
    # Logical ids met without a known server base: used (qualified by the source) only if nothing else is.
    unqualified_ids: list[str] = field(default_factory=list)


@dataclass
class Patient:
    """What the walk found of one patient."""

    identifiers: list[tuple[str, str]]
    data_elements: list[str]
    resources: int
    identifiers_omitted: int
    elements_omitted: int
    assumed: list[str]


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


class Walker:
    def __init__(self, fhir_base: str | None, element_names: bool, policy: IdentifierPolicy, source_id: str) -> None:
        self.fhir_base = fhir_base.rstrip("/") if fhir_base else None
        self.element_names = element_names
        self.policy = policy
        self.source_id = source_id
        self.nodes: list[_Node] = []
        self.parent: list[int] = []
        self.by_identifier: dict[tuple[str, str], int] = {}
        self.by_resource: dict[int, int] = {}  # id() of a Patient resource -> node
        self.by_logical: dict[tuple[str, str], int] = {}  # (base or "", logical id) of a Patient -> node
        self.by_unresolved: dict[str, int] = {}  # the same unresolvable reference is the same (unknown) patient
        self.keep_alive: list[Mapping[str, Any]] = []  # resources keyed by id() must outlive the walk
        self.without_patient = 0
        self.refusals: list[tuple[int | None, FHIRError]] = []
        self.unit: int | None = None  # the top-level Bundle entry being walked

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

    def _add_identifier(self, n: int, system: str, value: str, *, canonical: bool = True) -> None:
        system, value = system.strip(), value.strip()
        if canonical:
            found = self.policy.canonical(system, value)
            if found is None:
                self.nodes[n].assumed.append(Assumed.PLACEHOLDER_IDENTIFIER)
                return
            system, value = found
        if not (0 < len(system) <= _MAX_SYSTEM and 0 < len(value) <= _MAX_VALUE) or "\x00" in system + value:
            self.nodes[n].assumed.append(Assumed.UNUSABLE_IDENTIFIER)
            return
        key = (system, value)
        if key not in self.nodes[n].identifiers:
            self.nodes[n].identifiers.append(key)
        other = self.by_identifier.setdefault(key, n)
        self._union(n, other)

    def _identifier(self, n: int, ident: Any) -> None:
        """One FHIR Identifier of patient ``n``; what cannot be used is left out and flagged."""
        if not isinstance(ident, Mapping):
            self.nodes[n].assumed.append(Assumed.UNUSABLE_IDENTIFIER)
            return
        system, value = ident.get("system"), ident.get("value")
        if value is None or (isinstance(value, str) and not value.strip()):
            # Masked, or a data-absent-reason extension: valid R4, and nothing to link by.
            self.nodes[n].assumed.append(Assumed.IDENTIFIER_WITHOUT_VALUE)
            return
        if not isinstance(value, str) or (system is not None and not isinstance(system, str)):
            self.nodes[n].assumed.append(Assumed.UNUSABLE_IDENTIFIER)
            return
        if system is None or not system.strip():
            return  # a bare value means nothing outside the facility that assigned it
        self._add_identifier(n, system, value)

    def _logical_id(self, n: int, base: str | None, rid: str) -> None:
        if base:
            self._add_identifier(n, f"{base}/Patient", rid, canonical=False)
        elif rid not in self.nodes[n].unqualified_ids:
            self.nodes[n].unqualified_ids.append(rid)

    def patient_of_resource(self, resource: Mapping[str, Any], path: str, base: str | None, contained: bool) -> int:
        """The node of a Patient resource in the input (created on first use)."""
        n = self.by_resource.get(id(resource))
        if n is not None:
            return n
        n = self._new_node(path)
        self.by_resource[id(resource)] = n
        self.keep_alive.append(resource)
        idents = resource.get("identifier", [])
        for ident in idents if isinstance(idents, list) else [idents]:
            self._identifier(n, ident)
        rid = resource.get("id")
        if rid is not None and not contained:
            if isinstance(rid, str) and re.fullmatch(FHIR_ID, rid):
                self._logical_id(n, base, rid)
                other = self.by_logical.setdefault((base or "", rid), n)
                self._union(n, other)
            else:
                self.nodes[n].assumed.append(Assumed.UNUSABLE_IDENTIFIER)
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
            self._logical_id(n, base, rid)
        return n

    def _unresolved(self, ref: Any, path: str) -> int:
        """A patient field whose reference leads nowhere still names a patient: an unlinked one."""
        key = orjson.dumps(ref, option=orjson.OPT_SORT_KEYS).decode() if isinstance(ref, Mapping | str) else path
        n = self.by_unresolved.get(key)
        if n is None:
            n = self._new_node(path)
            self.by_unresolved[key] = n
            self.nodes[n].assumed.append(Assumed.REFERENCE_UNRESOLVED)
        return n

    def resolve(self, ref: Any, path: str, scope: _Scope) -> int | None:
        """The patient node a Reference names, or None when it names something else."""
        if isinstance(ref, str):
            ref = {"reference": ref}  # a bare reference string: wrong, and still clear
        if not isinstance(ref, Mapping):
            return self._unresolved(None, path)
        reference, type_hint, ident = ref.get("reference"), ref.get("type"), ref.get("identifier")
        if not isinstance(type_hint, str):
            type_hint = None
        n: int | None = None
        if isinstance(reference, str) and reference.strip():
            found = self._reference(reference.strip(), scope, type_hint)
            if found == _NOT_PATIENT:
                return None
            n = None if found == _UNRESOLVED else found
        elif type_hint is not None and type_hint != "Patient":
            return None
        if ident is not None:
            if n is None:
                n = self._new_node(path)
                self._identifier(n, ident)
                if not self.nodes[n].identifiers:
                    # Only the logical identifier could say who, and it cannot: as good as unresolved.
                    self.nodes[n].assumed.append(Assumed.REFERENCE_UNRESOLVED)
            else:
                self._identifier(n, ident)
        if n is None:
            return self._unresolved(ref, path)
        return n

    def _reference(self, reference: str, scope: _Scope, type_hint: str | None) -> int:
        """A node, ``_NOT_PATIENT``, or ``_UNRESOLVED`` (may be a patient, but nothing here says who)."""
        if reference.startswith("#"):
            target = _contained(scope.container, reference[1:])
            if target is None:
                return _UNRESOLVED
            resource, where = target
            if resource.get("resourceType") != "Patient":
                return _NOT_PATIENT
            return self.patient_of_resource(resource, join(scope.container_path, where), None, True)
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
            return self._patient_by_id(base, rid, scope, reference)
        m = _RELATIVE.match(reference)
        if m:
            if m.group(1) != "Patient":
                return _NOT_PATIENT
            return self._patient_by_id(scope.base, m.group(2), scope, reference)
        m = _CONDITIONAL.match(reference)
        if m:
            if m.group(1) != "Patient":
                return _NOT_PATIENT
            n = self._new_node(reference)
            for key, val in parse_qsl(m.group(2)):
                system, bar, value = val.partition("|")
                if key == "identifier" and bar and system and value:
                    self._add_identifier(n, system, value)
            return n if self.nodes[n].identifiers else _UNRESOLVED
        if type_hint is not None and type_hint != "Patient":
            return _NOT_PATIENT
        return _UNRESOLVED

    # -- resources ------------------------------------------------------------------------------------------

    def walk(self, data: Mapping[str, Any], rtype: str) -> None:
        """Walk a whole input (its type already checked)."""
        if rtype == "Bundle":
            self.bundle(data, "", 1)
        elif rtype == "Parameters":
            self.parameters(data, "", 1)
        else:
            self.resource(data, "", _Scope(base=self.fhir_base))

    def resource(self, resource: Any, path: str, scope: _Scope, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            raise FHIRError(path, f"Bundles and Parameters are nested more than {_MAX_DEPTH} deep")
        rtype = resource_type(resource, path)
        if rtype == "Bundle":
            self.bundle(resource, path, depth + 1)
            return
        if rtype == "Parameters":
            self.parameters(resource, path, depth + 1)
            return
        scope = _Scope(scope.by_full_url, scope.by_type_id, scope.base, resource, path)
        patients: list[int] = []
        if rtype == "Patient":
            patients.append(self.patient_of_resource(resource, path, scope.base, False))
        for name in PATIENT_FIELDS:
            patients += self._references(resource.get(name), join(path, name), scope)
        nested = _NESTED_PATIENT_FIELDS.get(rtype)
        if nested is not None:
            outer, inner = nested
            if outer is None:
                patients += self._references(resource.get(inner), join(path, inner), scope)
            else:
                parts = resource.get(outer, [])
                for i, part in enumerate(parts if isinstance(parts, list) else []):
                    if isinstance(part, Mapping):
                        where = join(join(path, outer), i)
                        patients += self._references(part.get(inner), join(where, inner), scope)
        if not patients:
            self.without_patient += 1
            return
        accessed: list[tuple[str, Mapping[str, Any] | None]] = [(rtype, resource)]
        contained = resource.get("contained", [])
        for inner_resource in contained if isinstance(contained, list) else []:
            inner_type = inner_resource.get("resourceType") if isinstance(inner_resource, Mapping) else None
            if isinstance(inner_type, str) and TYPE.match(inner_type):
                accessed.append((inner_type, inner_resource))
        for n in dict.fromkeys(patients):
            node = self.nodes[n]
            node.resources += 1
            for t, r in accessed:
                self._accessed(node, t, r)

    def _references(self, value: Any, path: str, scope: _Scope) -> list[int]:
        if value is None:
            return []
        refs: Iterable[tuple[str, Any]]
        refs = ((join(path, i), v) for i, v in enumerate(value)) if isinstance(value, list) else [(path, value)]
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
            names[f"{rtype}.{element_name(m.group(1))}"] = None

    def _guarded(self, index: int, top: bool, walk: Any, *args: Any) -> None:
        """Walk one entry or part; if it cannot be read, record a refusal and go on with the next."""
        if top:
            self.unit = index
        try:
            walk(*args)
        except FHIRError as exc:
            self.refusals.append((self.unit, exc))
        finally:
            if top:
                self.unit = None

    def bundle(self, bundle: Mapping[str, Any], path: str, depth: int) -> None:
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            raise FHIRError(join(path, "entry"), "must be a list")
        top = depth == 1
        scope = _Scope()
        # 1. Index the entries, so a reference resolves whichever comes first.
        for i, entry in enumerate(entries):
            where = join(join(path, "entry"), i)
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            rtype = resource.get("resourceType") if isinstance(resource, Mapping) else None
            if not isinstance(resource, Mapping) or not isinstance(rtype, str):
                continue  # refused when walked
            full_url = entry.get("fullUrl")
            indexed = (resource, join(where, "resource"), self._entry_base(entry))
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
            self._guarded(i, top, self._entry, entry, join(join(path, "entry"), i), scope, depth)

    def _entry(self, entry: Any, where: str, scope: _Scope, depth: int) -> None:
        if not isinstance(entry, Mapping):
            raise FHIRError(where, "must be an object")
        entry_scope = _Scope(scope.by_full_url, scope.by_type_id, self._entry_base(entry))
        resource = entry.get("resource")
        if resource is not None:
            self.resource(resource, join(where, "resource"), entry_scope, depth)
        else:
            self._entry_without_resource(entry, where, entry_scope)

    def parameters(self, parameters: Mapping[str, Any], path: str, depth: int) -> None:
        """Resources carried by an operation's Parameters (``parameter[].resource``, ``part[]`` nested):
        member-match's MemberPatient and Coverage, an operation's output. They reference each other by
        type and id, as the entries of a Bundle without fullUrls do."""
        found: list[tuple[str, Mapping[str, Any]]] = []
        self._parameter_resources(parameters.get("parameter"), join(path, "parameter"), found, 0)
        scope = _Scope(base=self.fhir_base)
        for rpath, resource in found:
            rtype, rid = resource.get("resourceType"), resource.get("id")
            if isinstance(rtype, str) and isinstance(rid, str):
                key = (rtype, rid)
                scope.by_type_id[key] = None if key in scope.by_type_id else (resource, rpath, self.fhir_base)
        top = depth == 1
        for i, (rpath, resource) in enumerate(found):
            self._guarded(i, top, self.resource, resource, rpath, scope, depth)
        if not found:
            self.without_patient += 1

    def _parameter_resources(
        self, params: Any, path: str, found: list[tuple[str, Mapping[str, Any]]], depth: int
    ) -> None:
        if not isinstance(params, list) or depth > _MAX_DEPTH:
            return
        for i, param in enumerate(params):
            if not isinstance(param, Mapping):
                continue
            where = join(path, i)
            if param.get("resource") is not None:
                found.append((join(where, "resource"), param["resource"]))
            self._parameter_resources(param.get("part"), join(where, "part"), found, depth + 1)

    def _entry_base(self, entry: Mapping[str, Any]) -> str | None:
        """The server base of an entry: its RESTful fullUrl's, none for a ``urn:`` (the id is not yet the
        server's), else ``fhir_base``."""
        full_url = entry.get("fullUrl")
        if not isinstance(full_url, str):
            return self.fhir_base
        m = _ABSOLUTE.match(full_url.strip())
        if m:
            return m.group(1)
        return None if full_url.strip().startswith("urn:") else self.fhir_base

    def _entry_without_resource(self, entry: Mapping[str, Any], path: str, scope: _Scope) -> None:
        request, response = entry.get("request"), entry.get("response")
        candidates = [
            request.get("url") if isinstance(request, Mapping) else None,
            response.get("location") if isinstance(response, Mapping) else None,
            entry.get("fullUrl"),
        ]
        for url in candidates:
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
            n = self._reference(url, scope, None)
            if n < 0:
                break
            node = self.nodes[n]
            node.resources += 1
            self._accessed(node, "Patient", None)
            return
        self.without_patient += 1

    # -- the patients found ------------------------------------------------------------------------------

    def patients(self) -> list[Patient]:
        """Each patient met, in first-met order; identifiers empty when none could be linked."""
        groups: dict[int, list[_Node]] = {}
        for n, node in enumerate(self.nodes):
            groups.setdefault(self.find(n), []).append(node)
        out = []
        for nodes in groups.values():
            types = list(dict.fromkeys(t for node in nodes for t in node.types))
            if not types:
                continue  # met only as a reference from something refused, or never accessed
            idents = list(dict.fromkeys(i for node in nodes for i in node.identifiers))
            assumed = list(dict.fromkeys(a for node in nodes for a in node.assumed))
            if not idents:
                # No base to qualify the logical id with: the source system serves, the only one known.
                unqualified = list(dict.fromkeys(r for node in nodes for r in node.unqualified_ids))
                if unqualified:
                    idents = [(f"{self.source_id}/Patient", rid) for rid in unqualified]
                    assumed.append(Assumed.BASE_FROM_SOURCE)
            # Each type, then its element names: Observation, Observation.code, ..., Condition, ...
            # Types always fit (R4 has fewer than 200); element names fill the room left.
            room = MAX_DATA_ELEMENTS - len(types)
            elements = [e for t in types for e in sorted({e for node in nodes for e in node.elements.get(t, {})})]
            kept = set(elements[:room])
            data = [x for t in types for x in (t, *(e for e in elements if e in kept and e.startswith(t + ".")))]
            out.append(
                Patient(
                    idents[:MAX_IDENTIFIERS],
                    data,
                    sum(node.resources for node in nodes),
                    max(0, len(idents) - MAX_IDENTIFIERS),
                    max(0, len(elements) - room),
                    assumed,
                )
            )
        return out


def _contained(container: Mapping[str, Any] | None, local_id: str) -> tuple[Mapping[str, Any], str] | None:
    contained = container.get("contained", []) if container is not None else []
    if not isinstance(contained, list):
        return None
    for i, resource in enumerate(contained):
        if isinstance(resource, Mapping) and resource.get("id") == local_id:
            return resource, f"contained[{i}]"
    return None
