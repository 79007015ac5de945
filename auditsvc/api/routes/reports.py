"""/v1/reports: the privacy officer's patient-access report. PHI travels in
the body, never the URL."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...domain.patient_stream import patient_access_records
from ...domain.reports import PatientAccessQuery, parse_query, patient_access_report
from ...reports_pdf.make import PDF_MEDIA_TYPE, patient_report_pdf
from ..csv_stream import events_csv
from ..deps import AuditDep, PrivacyOfficerDep
from ..formats import PatientFormatDep, PatientReportFormat, report_responses
from ..limits import BodyLimitsDep, read_json_body
from ..schemas import PatientAccessReport, request_body_schema

MAX_REPORT_BODY_BYTES = 64 * 1024

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.post(
    "/patient-access",
    response_model=PatientAccessReport,
    responses=report_responses(PatientReportFormat.CSV, PatientReportFormat.PDF),
    openapi_extra=request_body_schema(PatientAccessQuery),
    summary="Every system that accessed this patient's record (by any linked identifier)",
)
async def patient_access(
    request: Request,
    audit: AuditDep,
    caller: PrivacyOfficerDep,
    limits: BodyLimitsDep,
    fmt: PatientFormatDep = PatientReportFormat.JSON,
) -> Any:
    # The body is read only after the caller is authenticated, and bounded.
    query = parse_query(await read_json_body(request, MAX_REPORT_BODY_BYTES, limits.json))
    if fmt is PatientReportFormat.CSV:
        return events_csv(await patient_access_records(audit, query, caller), "patient-access.csv")
    if fmt is PatientReportFormat.PDF:
        return Response(await patient_report_pdf(audit, query, caller), media_type=PDF_MEDIA_TYPE)
    return await patient_access_report(audit, query, caller)
