"""OperationOutcome: the FHIR error resource, and ``FhirError``, raised by
the FHIR routes and the domain functions behind them (answered by
api/fhir_http.py). No HTTP framework here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue. ``diagnostics`` never quotes a value a
    client sent (it may be PHI); ``expression`` names the element or the
    search parameter (FHIRPath, or the parameter's name)."""

    severity: str  # fatal | error | warning | information
    code: str  # issue-type: invalid, required, not-found, not-supported, processing, security, forbidden...
    diagnostics: str
    expression: list[str] | None = None


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    """The OperationOutcome resource for ``issues``."""
    out: list[dict[str, Any]] = []
    for issue in issues:
        entry: dict[str, Any] = {"severity": issue.severity, "code": issue.code, "diagnostics": issue.diagnostics}
        if issue.expression:
            entry["expression"] = list(issue.expression)
        out.append(entry)
    return {"resourceType": "OperationOutcome", "issue": out}


class FhirError(Exception):
    """An error answered with HTTP ``status`` and an OperationOutcome."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        expression: list[str] | None = None,
        *,
        issues: Sequence[Issue] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.issues = [Issue("error", code, diagnostics, expression), *issues]
        self.headers = headers

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def invalid_parameter(name: str, why: str, code: str = "invalid") -> FhirError:
    """400 naming search parameter ``name`` (never its value: it may be PHI)."""
    return FhirError(400, code, f"search parameter {name}: {why}", [name])
