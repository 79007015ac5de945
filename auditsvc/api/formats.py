"""``?format=`` on the report endpoints, parsed in one place.

JSON is the default; ``csv`` streams the report's events (api/csv_stream.py).
Another format is one more member here and one more branch in the route. A
value outside the enumeration is refused with 422 naming ``format``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


FormatDep = Annotated[
    ReportFormat, Query(alias="format", description="json (default) or csv (streamed, one row per event)")
]


def report_responses(*formats: ReportFormat) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the media types its 200 answers in besides JSON."""
    media = {ReportFormat.CSV: "text/csv"}
    return {200: {"content": {media[f]: {"schema": {"type": "string"}} for f in formats if f in media}}}
