"""What the survey counts in FHIR JSON documents: resource kinds and shapes, never values.

A document *names a patient*, for the survey's share, when it holds a
``Patient`` resource, a reference to one (``Patient/x``, ``.../Patient/x``,
a reference typed ``Patient``), or a ``patient``/``beneficiary`` element with
a reference or an identifier. That is the survey's own reading, independent
of the helpers, so a document they refuse is still counted.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import orjson

from ._survey_shape import placeholder_label, value_shape
from .helpers import IdentifierPolicy

__all__ = ["FHIRStats"]

_PATIENT_REF = re.compile(r"(?:^|/)Patient/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")
_NAME = re.compile(r"[^A-Za-z0-9_.:/+~#@-]+")
_MAX_DEPTH = 48


def _system_label(system: Any) -> str:
    if not isinstance(system, str) or not system:
        return "(no system)"
    return _NAME.sub("-", system)[:96]


class FHIRStats:
    """Counts over FHIR JSON documents; ``add`` one document at a time."""

    def __init__(self, policy: IdentifierPolicy | None = None) -> None:
        self.policy = policy or IdentifierPolicy()
        self.documents = 0
        self.last_type = ""
        self.names_patient = 0
        self.invalid = 0
        self.top_level: Counter[str] = Counter()
        self.resources: Counter[str] = Counter()
        self.bundle_types: Counter[str] = Counter()
        self.identifiers: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.identifier_without_value: Counter[str] = Counter()
        self.references: Counter[str] = Counter()
        self.placeholders: Counter[str] = Counter()
        self.parameters_resources = 0
        self.bom = 0

    def add(self, data: bytes) -> bool:
        """Count one document; True when it names a patient."""
        if data.startswith(b"\xef\xbb\xbf"):
            self.bom += 1
            data = data[3:]
        self.documents += 1
        self.last_type = "?"
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.invalid += 1
            return False
        if not isinstance(doc, dict):
            self.invalid += 1
            return False
        rtype = doc.get("resourceType")
        self.last_type = rtype if isinstance(rtype, str) else "?"
        if self.last_type == "Bundle" and isinstance(doc.get("type"), str):
            self.last_type = f"Bundle ({doc['type']})"
        self.top_level[self.last_type] += 1
        named = self._walk(doc, "", 0, "", in_parameters=False)
        self.names_patient += named
        return named

    def _walk(self, node: Any, key: str, depth: int, owner: str, *, in_parameters: bool) -> bool:
        if depth > _MAX_DEPTH:
            return False
        named = False
        if isinstance(node, list):
            for element in node:
                named |= self._walk(element, key, depth + 1, owner, in_parameters=in_parameters)
            return named
        if not isinstance(node, dict):
            return False
        rtype = node.get("resourceType")
        if isinstance(rtype, str):
            self.resources[rtype] += 1
            if in_parameters and rtype != "Parameters":
                self.parameters_resources += 1
            if rtype == "Patient":
                named = True
            if rtype == "Bundle" and isinstance(node.get("type"), str):
                self.bundle_types[node["type"]] += 1
            in_parameters = in_parameters or rtype == "Parameters"
            owner = rtype
        if key == "identifier":
            self._identifier(node, owner or "?")
        if "reference" in node or (key in ("patient", "beneficiary", "subject") and "identifier" in node):
            named |= self._reference(node, key)
        for child_key, value in node.items():
            if isinstance(value, dict | list):
                named |= self._walk(value, child_key, depth + 1, owner, in_parameters=in_parameters)
        return named

    def _identifier(self, ident: dict[str, Any], owner: str) -> None:
        system = _system_label(ident.get("system"))
        value = ident.get("value")
        if not isinstance(value, str) or not value.strip():
            self.identifier_without_value[system] += 1
            return
        if self.policy.is_placeholder(value):
            self.placeholders[placeholder_label(value, self.policy.placeholders)] += 1
            self.identifiers[(system, owner)]["placeholder"] += 1
            return
        self.identifiers[(system, owner)][value_shape(value)] += 1

    def _reference(self, node: dict[str, Any], key: str) -> bool:
        ref = node.get("reference")
        rtype = node.get("type")
        if isinstance(ref, str):
            if ref.startswith("#"):
                style = "contained (#id)"
            elif ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
                style = "urn:uuid (Bundle entry)"
            elif ref.startswith(("http://", "https://")):
                style = "absolute URL"
            elif "?" in ref:
                style = "conditional (search)"
            else:
                style = "relative"
        elif isinstance(node.get("identifier"), dict):
            style = "logical (identifier only)"
        else:
            style = "display only"
        to_patient = (isinstance(ref, str) and bool(_PATIENT_REF.search(ref))) or rtype == "Patient"
        self.references[f"{'Patient' if to_patient else 'other'}: {style}"] += 1
        return to_patient or (key in ("patient", "beneficiary") and style != "display only")

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "naming_a_patient": self.names_patient,
            "not_json_objects": self.invalid,
            "with_byte_order_mark": self.bom,
            "top_level_types": dict(self.top_level.most_common()),
            "resource_types": dict(self.resources.most_common()),
            "bundle_types": dict(self.bundle_types.most_common()),
            "resources_inside_parameters": self.parameters_resources,
            "references": dict(self.references.most_common()),
            "identifiers": [
                {"system": system, "in": owner, "count": sum(shapes.values()), "shapes": dict(shapes.most_common())}
                for (system, owner), shapes in sorted(
                    self.identifiers.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])
                )
            ],
            "identifiers_without_value": dict(self.identifier_without_value.most_common()),
            "placeholders": dict(self.placeholders.most_common()),
        }
