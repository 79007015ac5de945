"""Running the SDK's own helpers on each surveyed input, as a channel would.

The survey does not re-implement what the helpers decide: every HL7 v2
message goes through ``events_from_hl7v2`` and every FHIR document through
``events_from_fhir`` with the settings given (``default_tz``, ``source``,
``fhir_base``), and what comes back (events, refusals by cause, assumptions
by code) is counted. Nothing is sent anywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._survey_settings import SurveySettings

__all__ = ["HelperOutcome", "run_fhir", "run_hl7v2"]

_ACTOR = {"id": "auditsvc-sdk-survey", "type": "system"}
_WHEN = datetime(2000, 1, 1, tzinfo=UTC)  # FHIR events need a time; the survey records none of them


@dataclass(slots=True)
class HelperOutcome:
    """What the helper made of one input."""

    events: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    assumptions: Counter[str] = field(default_factory=Counter)


def _assumed(event: Any) -> list[str]:
    value = event.attributes.get("assumed")
    return [code for code in value.split(",") if code] if isinstance(value, str) else []


def _outcome(result: Any) -> HelperOutcome:
    out = HelperOutcome()
    events = list(getattr(result, "events", result))
    out.events = len(events)
    for event in events:
        out.assumptions.update(_assumed(event))
    for refusal in getattr(result, "refusals", ()):
        out.refusals[refusal.cause] += 1
    return out


def run_hl7v2(data: bytes, settings: SurveySettings) -> HelperOutcome:
    from ._hl7v2 import HL7v2Error, events_from_hl7v2

    kwargs: dict[str, Any] = {"actor": _ACTOR, "default_tz": settings.tzinfo()}
    if settings.source:
        kwargs["source"] = settings.source
    try:
        return _outcome(events_from_hl7v2(data, **kwargs))
    except HL7v2Error:
        return HelperOutcome(refusals=Counter({"error": 1}))


def run_fhir(data: bytes, settings: SurveySettings) -> HelperOutcome:
    from ._fhir import FHIRError, events_from_fhir

    try:
        return _outcome(
            events_from_fhir(
                data,
                source=settings.source or "survey-source",
                destination="survey-destination",
                actor=_ACTOR,
                occurred_at=_WHEN,
                fhir_base=settings.fhir_base,
            )
        )
    except FHIRError:
        return HelperOutcome(refusals=Counter({"error": 1}))
