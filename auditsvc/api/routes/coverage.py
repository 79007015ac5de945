"""GET /v1/reports/coverage: every system and emitter with its last event,
the silent ones flagged, and the pairs seen for the first time in a period.
Privacy officers and auditors; no PHI in it, so its parameters sit in the URL."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ...domain.coverage import (
    DURATION_PATTERN,
    CoverageConfig,
    coverage_csv,
    coverage_report,
    parse_coverage_query,
)
from ..deps import AuditDep, EventReaderDep

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get(
    "/coverage",
    response_model=None,
    summary="Every system and emitter with its last event and usual rate; silent ones flagged; new pairs",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def coverage(
    audit: AuditDep,
    caller: EventReaderDep,
    from_: Annotated[
        str | None, Query(alias="from", max_length=40, description="new pairs from (date or RFC 3339)")
    ] = None,
    to: Annotated[str | None, Query(max_length=40, description="new pairs to (date or RFC 3339), inclusive")] = None,
    silent_after: Annotated[str | None, Query(pattern=DURATION_PATTERN, description="e.g. 90m, 24h, 7d")] = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    query = parse_coverage_query({"from": from_, "to": to, "silent_after": silent_after})
    report = await coverage_report(audit, query, caller, CoverageConfig.from_settings(audit.settings))
    if format == "csv":
        return StreamingResponse(
            coverage_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="coverage.csv"'},
        )
    return report
