"""Running the SDK's own helpers on each surveyed input, as a channel would.

The survey does not re-implement what the helpers decide: every HL7 v2
message goes through ``read_hl7v2`` and every FHIR document through
``read_fhir`` with the settings given (``default_tz``, ``default_authority``,
``source``, ``fhir_base``, the identifier policy), and what comes back
(events, refusals by :class:`Cause`, assumptions by :class:`Assumed` code)
is counted. Nothing is sent anywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._survey_settings import SurveySettings
from .helpers import HelperResult, assumed_codes, read_fhir, read_hl7v2

__all__ = ["HelperOutcome", "run_fhir", "run_hl7v2"]

_ACTOR = {"id": "auditsvc-sdk-survey", "type": "system"}
# The events are counted, never recorded: a fixed time spares a clock read per message.
_WHEN = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class HelperOutcome:
    """What the helper made of one input."""

    events: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    assumptions: Counter[str] = field(default_factory=Counter)


def _outcome(result: HelperResult) -> HelperOutcome:
    out = HelperOutcome(events=len(result.events))
    for event in result.events:
        out.assumptions.update(assumed_codes(event))
    out.refusals.update(refusal.cause for refusal in result.refusals)
    return out


def run_hl7v2(data: bytes, settings: SurveySettings) -> HelperOutcome:
    kwargs: dict[str, Any] = {
        "actor": _ACTOR,
        "default_tz": settings.tzinfo(),
        "default_authority": settings.default_authority,
        "identifier_policy": settings.policy(),
        "clock": lambda: _WHEN,
    }
    if settings.source:
        kwargs["source"] = settings.source
    return _outcome(read_hl7v2(data, **kwargs))


def run_fhir(data: bytes, settings: SurveySettings) -> HelperOutcome:
    return _outcome(
        read_fhir(
            data,
            source=settings.source or "survey-source",
            destination="survey-destination",
            actor=_ACTOR,
            occurred_at=_WHEN,
            fhir_base=settings.fhir_base,
            identifier_policy=settings.policy(),
        )
    )
