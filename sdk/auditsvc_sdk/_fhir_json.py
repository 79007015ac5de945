"""FHIR R4 JSON as the helpers read it: loading, resource types, element names, and the error.

Nothing here knows about patients (``_fhir_walk`` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ._exceptions import AuditError
from ._results import Cause

__all__ = ["TYPE", "FHIRError", "element_name", "load", "resource_type"]

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
TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")


class FHIRError(AuditError, ValueError):
    """The input is not usable FHIR R4 JSON. ``path`` is where (``entry[3].resource.subject``,
    empty for the whole input); the message never contains values from the input; ``cause``
    is the :class:`~auditsvc_sdk.helpers.Cause` code."""

    def __init__(self, path: str, problem: str, cause: str = Cause.BAD_ENTRY) -> None:
        self.path = path
        self.problem = problem
        self.cause = cause
        super().__init__(f"{path or '(root)'}: {problem}")


def element_name(name: str) -> str:
    """``valueQuantity`` -> ``value[x]``, ``multipleBirthInteger`` -> ``multipleBirth[x]``; others unchanged."""
    for m in _UPPER.finditer(name):
        prefix = name[: m.start()]
        if prefix in _CHOICE_PREFIXES and name[m.start() :] in _DATATYPES:
            return f"{prefix}[x]"
    return name


def resource_type(resource: Any, path: str) -> str:
    if not isinstance(resource, Mapping):
        raise FHIRError(path, "must be a JSON object (a FHIR resource)")
    rtype = resource.get("resourceType")
    if rtype is None:
        raise FHIRError(path, "has no resourceType")
    if not isinstance(rtype, str) or not TYPE.match(rtype):
        raise FHIRError(f"{path}.resourceType" if path else "resourceType", "is not a FHIR resource type name")
    return rtype


def load(resource_or_bundle: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    """The input as a JSON object; a UTF-8 byte-order mark before JSON text is dropped."""
    if isinstance(resource_or_bundle, Mapping):
        return resource_or_bundle
    if isinstance(resource_or_bundle, str | bytes | bytearray | memoryview):
        raw = resource_or_bundle
        text = raw.removeprefix("\ufeff") if isinstance(raw, str) else bytes(raw).removeprefix(b"\xef\xbb\xbf")
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            # Not the decoder's message: the document is PHI, and position is all a caller needs.
            raise FHIRError("", f"not valid JSON (line {exc.lineno}, column {exc.colno})", Cause.NOT_JSON) from None
        if not isinstance(data, dict):
            raise FHIRError("", "must be a JSON object (a FHIR resource or Bundle)", Cause.NOT_FHIR)
        return data
    raise FHIRError("", "must be a mapping, or JSON text as str or bytes", Cause.NOT_FHIR)
