"""/v1/reports: the privacy officer's patient-access report. PHI travels in
the body, never the URL."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...domain.patient_stream import patient_access_records
from ...domain.reports import PatientAccessQuery, parse_query, patient_access_report
from ..csv_stream import events_csv
from ..deps import AuditDep, PrivacyOfficerDep
from ..formats import FormatDep, ReportFormat, report_responses
from ..limits import BodyLimitsDep, read_json_body
from ..schemas import PatientAccessReport, request_body_schema

MAX_REPORT_BODY_BYTES = 64 * 1024

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.post(
    "/patient-access",
    response_model=PatientAccessReport,
    responses=report_responses(ReportFormat.CSV),
    openapi_extra=request_body_schema(PatientAccessQuery),
    summary="Every system that accessed this patient's record (by any linked identifier)",
)
async def patient_access(
    request: Request,
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    limits: BodyLimitsDep,
    fmt: FormatDep = ReportFormat.JSON,
) -> Any:
    # The body is read only after the caller is authenticated, and bounded.
    query = parse_query(await read_json_body(request, MAX_REPORT_BODY_BYTES, limits.json))
    if fmt is ReportFormat.CSV:
        return events_csv(await patient_access_records(audit, query, caller), "patient-access.csv")
    return await patient_access_report(audit, query, caller)
