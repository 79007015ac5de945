"""``?format=`` on the report endpoints, parsed in one place.

JSON is the default; ``csv`` streams the report's events (api/csv_stream.py);
``pdf`` is a document for the privacy office to send (auditsvc/reports_pdf).
Another format is one more member here and one more branch in the route. A
value outside the route's enumeration is refused with 422 naming ``format``.
Each route's enumeration holds only what it offers, so the OpenAPI document
says exactly which formats it answers in.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query


class ReportFormat(StrEnum):
    """The event reports (system, actor, activity)."""

    JSON = "json"
    CSV = "csv"


class PatientReportFormat(StrEnum):
    """The patient-access report."""

    JSON = "json"
    CSV = "csv"
    PDF = "pdf"


class AccountingFormat(StrEnum):
    """The accounting of disclosures."""

    JSON = "json"
    PDF = "pdf"


FormatDep = Annotated[
    ReportFormat, Query(alias="format", description="json (default) or csv (streamed, one row per event)")
]
PatientFormatDep = Annotated[
    PatientReportFormat,
    Query(alias="format", description="json (default), csv (streamed, one row per event) or pdf (every event)"),
]
AccountingFormatDep = Annotated[
    AccountingFormat, Query(alias="format", description="json (default) or pdf (the document for the patient)")
]

_MEDIA = {"csv": ("text/csv", {"type": "string"}), "pdf": ("application/pdf", {"type": "string", "format": "binary"})}


def report_responses(*formats: StrEnum) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the media types its 200 answers in besides JSON."""
    return {200: {"content": {_MEDIA[f][0]: {"schema": _MEDIA[f][1]} for f in formats if f in _MEDIA}}}
