"""``?format=`` on the report endpoints, parsed in one place.

JSON is the default; ``csv`` streams the report's events (api/csv_stream.py).
A format a route does not offer is refused with 422 naming ``format``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Query

from ..domain.errors import InvalidInput


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def report_format(
    format: Annotated[str, Query(description="json (default) or csv (streamed, one row per event)")] = "json",
) -> ReportFormat:
    try:
        return ReportFormat(format)
    except ValueError:
        raise InvalidInput(
            "unknown report format",
            [{"loc": ["query", "format"], "msg": "must be one of " + ", ".join(f.value for f in ReportFormat)}],
        ) from None


FormatDep = Annotated[ReportFormat, Depends(report_format)]
