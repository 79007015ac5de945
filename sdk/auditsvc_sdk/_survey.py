"""The survey itself: read inputs, describe them, run the helpers, recommend settings.

``Survey.add`` takes what ``_survey_read`` yields; ``Survey.report()`` is a
JSON-ready dict (``format: auditsvc-survey/1``), the one source the
terminal, JSON and HTML outputs are rendered from. It holds counts, codes,
system and authority names and value shapes only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from ._survey_fhir import FHIRStats
from ._survey_helpers import HelperOutcome, run_fhir, run_hl7v2
from ._survey_hl7 import HL7Stats
from ._survey_read import Item, Unreadable
from ._survey_recommend import recommendations
from ._survey_settings import SurveySettings

__all__ = ["FORMAT", "Survey"]

FORMAT = "auditsvc-survey/1"


class _Yield:
    """Helper outcomes over one kind of input."""

    def __init__(self) -> None:
        self.inputs = 0
        self.with_events = 0
        self.events = 0
        self.naming_a_patient = 0
        self.naming_a_patient_without_event = 0
        self.refusals: Counter[str] = Counter()
        self.assumptions: Counter[str] = Counter()
        self.by_type: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def add(self, outcome: HelperOutcome, names_patient: bool, kind: str) -> None:
        self.inputs += 1
        self.events += outcome.events
        self.with_events += outcome.events > 0
        self.naming_a_patient += names_patient
        self.naming_a_patient_without_event += names_patient and outcome.events == 0
        self.refusals.update(outcome.refusals)
        self.assumptions.update(outcome.assumptions)
        row = self.by_type[kind]
        row["inputs"] += 1
        row["with_events"] += outcome.events > 0
        row["naming_a_patient_without_event"] += names_patient and outcome.events == 0
        for cause, n in outcome.refusals.items():
            row[f"refused: {cause}"] += n

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "naming_a_patient": self.naming_a_patient,
            "with_events": self.with_events,
            "events": self.events,
            "naming_a_patient_without_event": self.naming_a_patient_without_event,
            "refusals": dict(self.refusals.most_common()),
            "assumptions": dict(self.assumptions.most_common()),
            "by_type": {
                kind: {
                    "inputs": row["inputs"],
                    "with_events": row["with_events"],
                    "naming_a_patient_without_event": row["naming_a_patient_without_event"],
                    "refusals": {k.removeprefix("refused: "): n for k, n in row.items() if k.startswith("refused: ")},
                }
                for kind, row in sorted(self.by_type.items(), key=lambda kv: (-kv[1]["inputs"], kv[0]))
            },
        }


class Survey:
    """Counts over a site's traffic; ``add`` each item read, then ``report()``."""

    def __init__(self, settings: SurveySettings | None = None) -> None:
        self.settings = settings or SurveySettings()
        self.hl7 = HL7Stats(self.settings.policy())
        self.fhir = FHIRStats(self.settings.policy())
        self.hl7_yield = _Yield()
        self.fhir_yield = _Yield()
        self.containers: Counter[str] = Counter()
        self.unreadable: Counter[str] = Counter()
        self.files = 0

    def add(self, item: Item | Unreadable) -> None:
        if isinstance(item, Unreadable):
            self.unreadable[item.cause] += 1
            return
        self.containers[item.container] += 1
        if item.kind == "hl7v2":
            names = self.hl7.add(item.data)
            self.hl7_yield.add(run_hl7v2(item.data, self.settings), names, self.hl7.last_type)
        else:
            names = self.fhir.add(item.data)
            self.fhir_yield.add(run_fhir(item.data, self.settings), names, self.fhir.last_type)

    def add_all(self, items: Iterable[Item | Unreadable], progress: Callable[[], None] | None = None) -> None:
        for item in items:
            self.add(item)
            if progress is not None:
                progress()

    def report(self) -> dict[str, Any]:
        hl7 = self.hl7.to_dict()
        fhir = self.fhir.to_dict()
        hl7_yield = self.hl7_yield.to_dict()
        fhir_yield = self.fhir_yield.to_dict()
        return {
            "format": FORMAT,
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "settings": self.settings.as_dict(),
            "inputs": {
                "hl7v2_messages": self.hl7.messages,
                "fhir_documents": self.fhir.documents,
                "containers": dict(self.containers.most_common()),
                "unreadable": dict(self.unreadable.most_common()),
            },
            "hl7v2": hl7,
            "fhir": fhir,
            "helpers": {"hl7v2": hl7_yield, "fhir": fhir_yield},
            "recommendations": recommendations(self.settings, hl7, fhir, hl7_yield, fhir_yield, self.hl7),
        }
