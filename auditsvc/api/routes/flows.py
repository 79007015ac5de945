"""/v1/reports/flows and /v1/reports/baa-gaps: the PHI flow map and the
flows into or through parties without an effective BAA. Privacy officers.
Neither names a patient, so the gap report's parameters sit in the URL."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...domain.flows import (
    FLOW_CSV_COLUMNS,
    GAP_CSV_COLUMNS,
    FlowQuery,
    baa_gap_report,
    flow_csv_row,
    flow_report,
    gap_csv_row,
    parse_flow_query,
    parse_gap_query,
    rows_of,
)
from ...reports_pdf.flows import committee_report_pdf, gaps_pdf
from ...reports_pdf.make import PDF_MEDIA_TYPE
from ..csv_stream import csv_response
from ..deps import AuditDep, PrivacyOfficerDep
from ..formats import report_responses
from ..limits import BodyLimitsDep, read_json_body
from .reports import MAX_REPORT_BODY_BYTES

router = APIRouter(prefix="/v1/reports", tags=["reports"])
REQUEST_MODELS = (FlowQuery,)
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2}))?$"


class FlowFormat(StrEnum):
    """The flow map and the BAA gaps."""

    JSON = "json"
    CSV = "csv"
    PDF = "pdf"


FlowFormatDep = Annotated[
    FlowFormat,
    Query(alias="format", description="json (default), csv (one row per flow or gap) or pdf (for the committee)"),
]


def _pdf(document: bytes, filename: str) -> Response:
    return Response(
        document,
        media_type=PDF_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.post(
    "/flows",
    response_model=None,
    responses=report_responses(FlowFormat.CSV, FlowFormat.PDF),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FlowQuery"}}},
        }
    },
    summary="The PHI flow map: every source -> destination pair of a period with its parties and BAA states",
)
async def flows(
    request: Request,
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    limits: BodyLimitsDep,
    fmt: FlowFormatDep = FlowFormat.JSON,
) -> Any:
    query = parse_flow_query(await read_json_body(request, MAX_REPORT_BODY_BYTES, limits.json))
    if fmt is FlowFormat.PDF:
        return _pdf(await committee_report_pdf(audit, query, caller), "compliance-committee.pdf")
    report = await flow_report(audit, query, caller)
    if fmt is FlowFormat.CSV:
        return csv_response(FLOW_CSV_COLUMNS, rows_of(report["flows"]), flow_csv_row, "flows.csv")
    return report


@router.get(
    "/baa-gaps",
    response_model=None,
    responses=report_responses(FlowFormat.CSV, FlowFormat.PDF),
    summary="Flows into or through parties without an effective BAA, into unregistered systems; BAAs expiring",
)
async def baa_gaps(
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    from_: Annotated[
        str | None, Query(alias="from", max_length=40, pattern=DAY_PATTERN, description="first day (or RFC 3339)")
    ] = None,
    to: Annotated[
        str | None, Query(max_length=40, pattern=DAY_PATTERN, description="last day (or RFC 3339), inclusive")
    ] = None,
    expiring_within_days: Annotated[int | None, Query(ge=0, le=3650, description="default 30")] = None,
    fmt: FlowFormatDep = FlowFormat.JSON,
) -> Any:
    query = parse_gap_query({"from": from_, "to": to, "expiring_within_days": expiring_within_days})
    if fmt is FlowFormat.PDF:
        return _pdf(await gaps_pdf(audit, query, caller), "baa-gaps.pdf")
    report = await baa_gap_report(audit, query, caller)
    if fmt is FlowFormat.CSV:
        return csv_response(GAP_CSV_COLUMNS, rows_of(report["gaps"]), gap_csv_row, "baa-gaps.csv")
    return report
